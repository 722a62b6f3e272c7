// `ambit up --observability` end to end: a real Prometheus (Debian's) and a
// real Jaeger (built from its Go module by scripts/build-jaeger.sh, cached)
// next to a local mesh with a waypoint. After known traffic:
//   - Prometheus' HTTP API (through the host loopback URL `ambit status`
//     prints) returns the exact connection count of each L4 edge
//     (istio_tcp_connections_opened_total by source/destination workload),
//     the exact request count by code through the waypoint
//     (istio_requests_total), and the L4 denial;
//   - every panel query (and variable) of the Grafana dashboards in
//     manifests/observability parses and returns data, except panels that
//     say "Empty when ..." (reported, not required);
//   - Jaeger's query API returns the trace of a request sent with a
//     traceparent: the waypoint's span is the child of the client's span,
//     and the server received the waypoint's span as its parent;
//   - `ambit down` stops Prometheus, Jaeger and the host forwards.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import t, { type Test } from "tap";
import { ambit, testMeshDirs } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";
import { TRAFFIC, writeObservabilityFixture } from "./observability-fixture.js";
import { type Dashboard, dashboardQueries, expandGrafanaVariables } from "./observability-queries.js";

const SCRAPE_SECONDS = 1;
const N_TCP = 5;
const N_HTTP = 7;
const N_ADMIN = 2;
const N_ROGUE = 2;

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(base: string, query: string): Promise<PromSample[]> {
  const r = await fetch(`${base}api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await r.json()) as { status: string; error?: string; data?: { result: PromSample[] } };
  if (body.status !== "success") throw new Error(`${query}: ${body.error ?? r.status}`);
  return body.data!.result;
}

/** Polls `probe` until it returns a value (external servers give no event to wait on); throws with the last state at the deadline. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** scripts/build-jaeger.sh with its progress as test comments; resolves to the binary. */
function buildJaeger(t: Test): Promise<string> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn("bash", [path.join(process.cwd(), "scripts/build-jaeger.sh")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => {
      for (const l of d.toString().split("\n")) if (l.startsWith("build-jaeger:")) t.comment(l);
    });
    child.on("close", (code) => {
      t.comment(`build-jaeger.sh took ${Math.round((Date.now() - started) / 1000)} s`);
      const bin = out.trim().split("\n").pop() ?? "";
      if (code === 0 && fs.existsSync(bin)) resolve(bin);
      else reject(new Error(`build-jaeger.sh failed (code ${code})`));
    });
  });
}

let jaegerBin: string | undefined;

t.test(
  "Jaeger is built (once; cached in ~/.cache/ambit/bin)",
  { skip: needsRoot, timeout: 40 * 60_000 },
  async (t) => {
    jaegerBin = await buildJaeger(t);
    t.ok(fs.statSync(jaegerBin).size > 10 << 20, `${jaegerBin} is a real binary`);
  },
);

t.test(
  "ambit up --observability: Prometheus counts every edge, every dashboard query answers, Jaeger has the trace",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    if (!jaegerBin) return t.fail("no Jaeger binary");
    const started = Date.now();
    const { runDir, dir, meshId } = testMeshDirs(t, "obs");
    writeObservabilityFixture(dir);
    process.env.AMBIT_JAEGER_BIN = jaegerBin;
    const up = await ambit(runDir, [
      "up",
      dir,
      "--nodes",
      "2",
      "--mesh-id",
      meshId,
      "--timeout",
      "90",
      "--observability",
      "--scrape-interval",
      String(SCRAPE_SECONDS),
    ]);
    t.equal(up.code, 0, "ambit up --observability", { stderr: up.stderr });
    t.match(up.stderr, /starting Prometheus and Jaeger/, "progress names them");
    t.comment(`up in ${Math.round((Date.now() - started) / 1000)} s`);

    const statusText = await ambit(runDir, ["status", "--mesh-id", meshId]);
    t.match(statusText.stdout, /prometheus: http:\/\/127\.0\.0\.1:\d+\/ \(scrapes every 1s\)/);
    t.match(
      statusText.stdout,
      /jaeger: http:\/\/127\.0\.0\.1:\d+\/ \(OTLP from the waypoints: http:\/\/10\.213\.0\.2:4318\)/,
    );
    const status = JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as {
      observability: {
        prometheus: { url: string; ready: boolean };
        jaeger: { url: string; ready: boolean; otlpEndpoint: string };
      };
      pods: { key: string; ip: string }[];
    };
    const prom = status.observability.prometheus.url;
    const jaeger = status.observability.jaeger.url;
    t.ok(status.observability.prometheus.ready && status.observability.jaeger.ready, "both ready");

    // Every component is a target and up: the controller, both ztunnels, the waypoint.
    const targets = await until("all targets up", 30_000, async () => {
      const r = (await (await fetch(`${prom}api/v1/targets`)).json()) as {
        data: { activeTargets: { labels: Record<string, string>; health: string }[] };
      };
      const up = r.data.activeTargets.filter((x) => x.health === "up");
      return up.length >= 4 && up.some((x) => x.labels.job === "ambit-waypoint") ? up : undefined;
    });
    t.same(
      targets.map((x) => `${x.labels.job} ${x.labels.gateway ?? x.labels.node ?? ""}`.trim()).sort(),
      ["ambit-controller", "ambit-waypoint obs/waypoint", "ambit-ztunnel node-1", "ambit-ztunnel node-2"],
      "Prometheus scrapes the controller, every ztunnel and the waypoint",
    );

    // Known traffic.
    const exec = async (pod: string, args: string[]) => {
      const r = await ambit(
        runDir,
        ["exec", "--mesh-id", meshId, pod, "--", "node", "-e", TRAFFIC, ...args],
        60_000,
      );
      t.equal(r.code, 0, `exec ${pod} ${args.join(" ")}`, { stderr: r.stderr });
      return JSON.parse(r.stdout.trim().split("\n").pop() ?? "[]") as {
        out?: string;
        error?: string;
        status?: number;
        body?: string;
      }[];
    };
    const tcp = await exec("obs/client", ["db.obs", "80", String(N_TCP), "tcp"]);
    t.same(
      tcp.map((r) => r.out),
      Array(N_TCP).fill("echo:hi"),
      "client → db: every connection echoed",
    );
    const traceId = [...Array(32)].map(() => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
    const clientSpan = "00f067aa0ba902b7";
    const parent = `00-${traceId}-${clientSpan}-01`;
    const web = await exec("obs/client", ["web.obs", "80", String(N_HTTP), "http", "/hello", parent]);
    t.same(
      web.map((r) => r.status),
      Array(N_HTTP).fill(200),
      "client → web through the waypoint: 200s",
    );
    const admin = await exec("obs/client", ["web.obs", "80", String(N_ADMIN), "http", "/admin/x"]);
    t.same(
      admin.map((r) => r.status),
      Array(N_ADMIN).fill(403),
      "client → web /admin: denied at the waypoint",
    );
    const rogue = await exec("obs/rogue", ["db.obs", "80", String(N_ROGUE), "tcp"]);
    t.ok(
      rogue.every((r) => r.out !== "echo:hi"),
      "rogue → db: denied at L4",
    );

    // Exact counts per edge, once Prometheus has scraped them.
    const edges = await until("L4 edge counts", 30_000, async () => {
      const r = await promQuery(
        prom,
        'sum by (source_workload, destination_workload) (istio_tcp_connections_opened_total{reporter="destination",destination_workload_namespace="obs"})',
      );
      const m = Object.fromEntries(
        r.map((s) => [`${s.metric.source_workload}→${s.metric.destination_workload}`, Number(s.value[1])]),
      );
      return m["client→db"] === N_TCP ? m : undefined;
    });
    t.equal(edges["client→db"], N_TCP, `client→db: ${N_TCP} connections (reporter=destination)`);
    t.comment(`L4 edges seen by destination ztunnels: ${JSON.stringify(edges)}`);
    // The source side is scraped on its own schedule: wait for its counts too
    // (the last requests of the run may not be scraped yet).
    let lastSrc: Record<string, number> = {};
    const srcEdges = await until("source-side L4 edge counts", 30_000, async () => {
      lastSrc = Object.fromEntries(
        (
          await promQuery(
            prom,
            'sum by (source_workload, destination_workload) (istio_tcp_connections_opened_total{reporter="source",source_workload="client"})',
          )
        ).map((s) => [s.metric.destination_workload, Number(s.value[1])]),
      );
      return lastSrc.db === N_TCP && lastSrc.waypoint === N_HTTP + N_ADMIN ? lastSrc : undefined;
    }).catch(() => lastSrc);
    t.equal(srcEdges.db, N_TCP, `client→db: ${N_TCP} connections (reporter=source)`);
    // One connection per request (agent: false), captured by client's ztunnel and sent to the waypoint.
    t.equal(
      srcEdges.waypoint,
      N_HTTP + N_ADMIN,
      `client→waypoint: ${N_HTTP + N_ADMIN} connections (reporter=source)`,
    );

    const edge = "spiffe://cluster.local/ns/obs/sa/client→web.obs.svc.cluster.local";
    const requests = await until("L7 request counts", 30_000, async () => {
      const r = await promQuery(
        prom,
        'sum by (source_principal, destination_service, response_code) (istio_requests_total{reporter="waypoint",destination_service="web.obs.svc.cluster.local"})',
      );
      const m = Object.fromEntries(
        r.map((s) => [
          `${s.metric.source_principal}→${s.metric.destination_service} ${s.metric.response_code}`,
          Number(s.value[1]),
        ]),
      );
      return m[`${edge} 200`] === N_HTTP && m[`${edge} 403`] === N_ADMIN ? m : undefined;
    });
    t.equal(requests[`${edge} 200`], N_HTTP, `client→web through the waypoint: ${N_HTTP} × 200`);
    t.equal(requests[`${edge} 403`], N_ADMIN, `client→web /admin: ${N_ADMIN} × 403`);
    const byWorkload = await promQuery(
      prom,
      'sum by (source_workload, destination_workload) (istio_requests_total{reporter="waypoint",destination_service="web.obs.svc.cluster.local"})',
    );
    // The source from the CONNECT's baggage (client is not among the waypoint's
    // endpoints); the destination from the picked endpoint, so requests denied
    // before a pick (/admin, 403) name no destination workload, as in Istio.
    t.same(
      byWorkload
        .map((s) => `${s.metric.source_workload}→${s.metric.destination_workload} ${s.value[1]}`)
        .sort(),
      [`client→unknown ${N_ADMIN}`, `client→web ${N_HTTP}`],
      "istio_requests_total names the source and destination workloads",
    );
    const denied = await until("L4 denials", 30_000, async () => {
      const r = await promQuery(
        prom,
        'sum(ambit_tcp_connections_denied_total{source_workload="rogue",destination_workload="db"})',
      );
      return r.length > 0 && Number(r[0]!.value[1]) >= N_ROGUE ? Number(r[0]!.value[1]) : undefined;
    });
    t.equal(denied, N_ROGUE, `rogue→db: ${N_ROGUE} connections denied`);

    // rate() needs two samples: the last series to appear (the denial) has a few before the dashboards are queried.
    await until("a few samples of the last series", 30_000, async () => {
      const r = await promQuery(
        prom,
        'count_over_time(ambit_tcp_connections_denied_total{source_workload="rogue"}[1m])',
      );
      return r.length > 0 && Number(r[0]!.value[1]) >= 3 ? true : undefined;
    });
    // Every dashboard query parses (Prometheus' parser) and answers.
    const dashDir = path.join(process.cwd(), "manifests/observability/dashboards");
    const empty: string[] = [];
    let answered = 0;
    for (const f of fs.readdirSync(dashDir).filter((x) => x.endsWith(".json"))) {
      const d = JSON.parse(fs.readFileSync(path.join(dashDir, f), "utf8")) as Dashboard;
      for (const q of dashboardQueries(d)) {
        const result = await promQuery(prom, expandGrafanaVariables(q.expr)).catch((e: Error) => e);
        if (result instanceof Error) {
          t.fail(`${d.uid} '${q.panel}': ${result.message}`);
          continue;
        }
        if (result.length > 0) answered++;
        else if (q.emptyOk) empty.push(`${d.uid} '${q.panel}'`);
        else t.fail(`${d.uid} '${q.panel}' returned no data: ${q.expr}`);
      }
    }
    t.ok(answered > 40, `${answered} dashboard queries returned data`);
    t.comment(`empty, as their panels allow: ${empty.join(", ") || "none"}`);

    // Jaeger: the request we sent with a traceparent, as a trace that crosses the waypoint.
    const trace = await until("trace in Jaeger", 30_000, async () => {
      const r = await fetch(`${jaeger}api/traces/${traceId}`);
      if (!r.ok) return undefined;
      const body = (await r.json()) as {
        data: {
          spans: {
            spanID: string;
            operationName: string;
            references: { refType: string; spanID: string }[];
            tags: { key: string; value: unknown }[];
            processID: string;
          }[];
          processes: Record<string, { serviceName: string }>;
        }[];
      };
      const tr = body.data?.[0];
      const n = tr?.spans.filter((s) => tr.processes[s.processID]?.serviceName === "ambit-waypoint").length;
      return n === N_HTTP ? tr : undefined;
    });
    // Every request carried the same traceparent: one waypoint span each, all children of the client's span.
    const wp = trace!.spans.filter((s) => trace!.processes[s.processID]?.serviceName === "ambit-waypoint");
    t.equal(wp.length, N_HTTP, `${N_HTTP} waypoint spans in the trace`);
    t.same(
      [...new Set(wp.map((s) => JSON.stringify(s.references.map((r) => [r.refType, r.spanID]))))],
      [JSON.stringify([["CHILD_OF", clientSpan]])],
      "each a child of the client's span",
    );
    const webIp = status.pods.find((p) => p.key === "obs/web")?.ip;
    for (const span of wp.slice(0, 1)) {
      const tag = (k: string) => span.tags.find((x) => x.key === k)?.value;
      t.equal(tag("http.response.status_code"), 200);
      t.equal(tag("url.path"), "/hello");
      t.match(String(tag("ambit.upstream")), webIp ?? "(no web ip)", "upstream is the web pod");
    }
    // The server received the waypoint's span as its parent: the trace crosses the waypoint.
    const parents = web.map((r) => (JSON.parse(r.body!) as { traceparent: string }).traceparent);
    t.ok(
      parents.every((p) => p.startsWith(`00-${traceId}-`)),
      "the server saw the client's trace id",
    );
    t.same(
      parents.map((p) => p.split("-")[2]).sort(),
      wp.map((s) => s.spanID).sort(),
      "the server's parent span ids are exactly the waypoint's spans",
    );
    const byService = (await (
      await fetch(`${jaeger}api/traces?service=ambit-waypoint&limit=100`)
    ).json()) as {
      data: unknown[];
    };
    t.ok(byService.data.length >= 1, `/api/traces?service=ambit-waypoint: ${byService.data.length} traces`);

    // `ambit down` stops Prometheus, Jaeger and the forwards.
    const down = await ambit(runDir, ["down", "--mesh-id", meshId], 60_000);
    t.equal(down.code, 0, "ambit down");
    await t.rejects(
      fetch(`${prom}-/ready`, { signal: AbortSignal.timeout(2000) }),
      "Prometheus' URL is gone",
    );
    await t.rejects(fetch(jaeger, { signal: AbortSignal.timeout(2000) }), "Jaeger's URL is gone");
    t.comment(`test body ${Math.round((Date.now() - started) / 1000)} s`);
  },
);

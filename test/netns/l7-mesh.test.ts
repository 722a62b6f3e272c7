// The waypoint in a real local mesh: `ambit up` on test/fixtures/l7-mesh (two
// nodes, namespace `shop` behind its waypoint), then requests from a pod on
// node-1 through its ztunnel, the waypoint and node-2's ztunnel to real
// backends: a 90/10 split over 1,000 requests, retries hiding a backend that
// fails 1 in 3, a 100% abort, a mirror (live and dead), L7 denial (403), JWT
// (401 / 200), a Service that opts out of the waypoint, and bad routes
// written into the running mesh's directory (conditions with reasons, the
// other routes unaffected). One mesh for all of it.
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import {
  binomialBounds,
  byName,
  copyFixture,
  FIXTURE_DIR,
  type LoadResult,
  type LoadSpec,
  load,
  makeJwt,
  metricSum,
  textOf,
} from "./l7-fixture.js";
import { ambit, testMeshDirs } from "./mesh-fixture.js";
import { needsRoot, waitForFile } from "./netns-fixture.js";

interface Status {
  pods: { key: string; ip: string; ready: boolean; enrolled?: boolean }[];
  errors: { message: string; field?: string }[];
  conditions?: { object: string; conditions: string[] }[];
}

t.test(
  "L7 in a real mesh: split, retry, abort, mirror, authz, JWT, opt-out, bad input",
  { skip: needsRoot, timeout: 300_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "l7");
    copyFixture(dir);
    const jwt = await makeJwt();
    fs.writeFileSync(path.join(dir, "jwt.yaml"), jwt.yaml);

    const started = Date.now();
    const up = await ambit(
      runDir,
      ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "120"],
      180_000,
    );
    t.equal(up.code, 0, "ambit up", { stderr: up.stderr });
    if (up.code !== 0) return;
    t.comment(`mesh up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const status = async (): Promise<Status> =>
      JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as Status;
    const first = await status();
    const pod = (key: string) => first.pods.find((p) => p.key === key);
    const waypoint = first.pods.find((p) => p.key.startsWith("shop/waypoint"));
    t.ok(waypoint?.ready, "the waypoint runs as a pod of shop");
    t.match(pod("shop/client"), { ready: true, enrolled: true });
    const run = (specs: LoadSpec[]) => load(runDir, meshId, "shop/client", specs);
    // The waypoint's Prometheus endpoint, read from the client pod (plain TCP: the waypoint pod is not enrolled).
    const metricsSpec = (name: string): LoadSpec => ({
      name,
      url: `http://${waypoint!.ip}:15020/metrics`,
      n: 1,
      text: true,
    });
    const stats = (name: string, svc: string, extra: Partial<LoadSpec> = {}): LoadSpec => ({
      name,
      url: `http://${svc}.shop/__stats`,
      n: 1,
      ...extra,
    });
    type Stats = {
      served: number;
      failed: number;
      paths: Record<string, number>;
      hosts: Record<string, number>;
    };
    const statsOf = (r: LoadResult) => (r.last?.json ?? {}) as Stats;
    const BLACKHOLE = "shop/blackhole.shop.svc.cluster.local:80";

    // All the traffic of the first six checks in one run inside the client pod, in order; the subtests read it.
    const t0 = Date.now();
    const r = byName(
      await run([
        // The waypoint has its routes once the header-pinned canary answers v2.
        {
          name: "ready",
          url: "http://reviews.shop/",
          headers: { "x-canary": "always" },
          until: 200,
          untilIncludes: '"v2"',
          untilMs: 30_000,
        },
        metricsSpec("m0"),
        { name: "split", url: "http://reviews.shop/", n: 1000, concurrency: 8 },
        metricsSpec("m1"),
        // One at a time: a retry then always lands on a request the backend answers.
        { name: "flaky", url: "http://flaky.shop/", n: 60 },
        stats("flaky-stats", "flaky"),
        { name: "abort", url: "http://broken.shop/anything", n: 20, concurrency: 2 },
        stats("details-stats", "details"),
        { name: "mirror-live", url: "http://details.shop/live/1", n: 10 },
        { name: "mirror-dead", url: "http://details.shop/dead/1", n: 20, concurrency: 2, timeoutMs: 3000 },
        // The copies are sent alongside the main requests: wait for them where they land.
        stats("shadow-stats", "details-shadow", { untilIncludes: '"/live/1":10', untilMs: 10_000 }),
        { name: "admin", url: "http://reviews.shop/admin/config", n: 3 },
        { name: "home", url: "http://reviews.shop/", n: 3 },
        { name: "jwt-none", url: "http://secure.shop/", n: 3 },
        {
          name: "jwt-forged",
          url: "http://secure.shop/",
          n: 3,
          headers: { authorization: `Bearer ${jwt.forged}` },
        },
        {
          name: "jwt-valid",
          url: "http://secure.shop/",
          n: 3,
          headers: { authorization: `Bearer ${jwt.valid}` },
        },
        metricsSpec("m2"),
        { name: "direct", url: "http://direct.shop/", n: 20, concurrency: 2 },
        metricsSpec("m3"),
      ]),
    );
    t.comment(`traffic run in the client pod: ${Date.now() - t0} ms (exec included)`);
    t.equal(r("ready").last?.json?.version, "v2", "the waypoint routes (x-canary pins v2)");

    await t.test("90/10 weight split over 1,000 requests", async (t) => {
      const split = r("split");
      t.same(split.statuses, { 200: 1000 }, `all 200 ${JSON.stringify(split.errors)}`);
      const v2 = split.versions.v2 ?? 0;
      const [lo, hi] = binomialBounds(1000, 0.1, 5);
      t.ok(v2 >= lo && v2 <= hi, `v2 got ${v2} of 1000, within [${lo}, ${hi}] (5 sigma)`);
      t.equal((split.versions.v1 ?? 0) + v2, 1000, "v1 answered the rest");
      const reviews = (m: string) =>
        metricSum(textOf(r(m)), "istio_requests_total", {
          reporter: "waypoint",
          destination_service: "reviews.shop.svc.cluster.local",
        });
      t.equal(reviews("m1") - reviews("m0"), 1000, "the waypoint counted each");
    });

    await t.test("a backend failing 1 in 3 succeeds with the route's retry", async (t) => {
      t.same(r("flaky").statuses, { 200: 60 }, `every request 200 ${JSON.stringify(r("flaky").errors)}`);
      const s = statsOf(r("flaky-stats"));
      t.ok(s.failed >= 20, `the backend did fail ${s.failed} of ${s.served}`);
      t.equal(s.served, 60 + s.failed, "each failure was retried once");
      t.ok(metricSum(textOf(r("m2")), "ambit_waypoint_retries_total") >= s.failed, "retries are counted");
    });

    await t.test("a 100% abort returns the configured status", async (t) => {
      t.same(r("abort").statuses, { 418: 20 }, "all 418 (FaultInjection teapot)");
      t.notOk(statsOf(r("details-stats")).paths?.["/anything"], "the backend never saw them");
      t.ok(statsOf(r("details-stats")).served >= 0, "(the backend's stats answered)");
    });

    await t.test("mirror: the copy arrives; a dead mirror does not touch the main path", async (t) => {
      t.same(r("mirror-live").statuses, { 200: 10 }, "mirrored requests answered");
      const dead = r("mirror-dead");
      t.same(dead.statuses, { 200: 20 }, "requests mirrored to a blackhole and to no endpoints answered");
      t.ok(dead.maxMs < 1500, `... without waiting on the mirror (slowest ${dead.maxMs} ms)`);
      const shadow = statsOf(r("shadow-stats"));
      t.equal(shadow.paths?.["/live/1"], 10, "the shadow got a copy of each");
      t.ok(shadow.hosts?.["details.shop-shadow"], "with Host <host>-shadow");
      t.notOk(shadow.paths?.["/dead/1"], "only its own route's copies");
      t.ok(metricSum(textOf(r("m2")), "ambit_waypoint_mirrored_total") >= 10, "mirrored copies are counted");
    });

    await t.test("L7 authorization and JWT", async (t) => {
      t.same(r("admin").statuses, { 403: 3 }, "a path denied by policy: 403");
      t.same(r("home").statuses, { 200: 3 }, "the rest of reviews: 200");
      t.same(r("jwt-none").statuses, { 401: 3 }, "no JWT where a request principal is required: 401");
      t.match(r("jwt-none").last?.headers?.["www-authenticate"], /Bearer/, "with WWW-Authenticate");
      t.same(r("jwt-forged").statuses, { 401: 3 }, "a JWT signed by another key: 401");
      t.same(r("jwt-valid").statuses, { 200: 3 }, "a valid JWT passes");
      const m = textOf(r("m2"));
      t.ok(metricSum(m, "ambit_waypoint_denied_total", { reason: "policy" }) >= 3, "denials counted");
      t.ok(
        metricSum(m, "ambit_waypoint_denied_total", { reason: "jwt_missing" }) >= 3,
        "missing JWTs counted",
      );
    });

    await t.test("a Service without the waypoint never touches it", async (t) => {
      const total = (m: string) => metricSum(textOf(r(m)), "istio_requests_total", { reporter: "waypoint" });
      t.same(r("direct").statuses, { 200: 20 }, "direct answers");
      t.ok(total("m2") > 1000, "(the waypoint's counters are read)");
      t.equal(total("m3"), total("m2"), "the waypoint counted no request for it");
      t.notOk(textOf(r("m3")).includes('destination_service="direct.shop'), "and has no series for direct");
      // node-1's ztunnel logs each connection when it closes (load.mjs closes them after each spec).
      const { logSources } = await import("../../local/supervisor-logs.js");
      const { meshPaths } = await import("../../local/supervisor-plan.js");
      const file = logSources(meshPaths(meshId), "ztunnel-node-1")[0]!.file;
      const lines = (text: string, svc: string) =>
        text
          .split("\n")
          .filter(
            (l) =>
              l.includes('"connection complete"') && l.includes(`"service":"${svc}.shop.svc.cluster.local"`),
          )
          .map((l) => JSON.parse(l) as { direction: string; hbone?: string; waypoint?: boolean })
          .filter((l) => l.direction === "outbound");
      await waitForFile(file, (text) => lines(text, "direct").length > 0);
      const text = fs.readFileSync(file, "utf8");
      const direct = lines(text, "direct");
      t.ok(direct.length > 0, "node-1's ztunnel logged the connections to direct");
      t.ok(
        direct.every((l) => l.waypoint === false && l.hbone === `${pod("shop/direct")?.ip}:15008`),
        "tunnelled straight to the pod (HBONE to its IP), not through the waypoint",
        { direct },
      );
      t.ok(
        lines(text, "reviews").some((l) => l.waypoint === true && l.hbone === `${waypoint!.ip}:15008`),
        "(while reviews' connections went to the waypoint)",
      );
    });

    await t.test("bad input: conditions with reasons, the other routes keep working", async (t) => {
      const { adminJson } = await import("../../local/supervisor-logs.js");
      const { meshPaths } = await import("../../local/supervisor-plan.js");
      type Full = {
        kind: string;
        name: string;
        status: { parents?: { conditions: { type: string; message: string }[] }[] };
      }[];
      const debugStatus = () =>
        adminJson<Full>(meshPaths(meshId).controllerSocket, "/debug/status", "the controller");
      const conditionsOf = (full: Full, route: string) =>
        full.find((o) => o.kind === "HTTPRoute" && o.name === route)?.status.parents?.[0]?.conditions ?? [];
      // The controller re-reads the directory on change; ask it (its admin socket, cheap) until it has.
      const untilStatus = async (pred: (full: Full) => boolean): Promise<Full> => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const full = await debugStatus();
          if (pred(full) || Date.now() > deadline) return full;
          await new Promise((w) => setTimeout(w, 100));
        }
      };
      fs.copyFileSync(path.join(FIXTURE_DIR, "edits", "bad-input.yaml"), path.join(dir, "bad-input.yaml"));
      const full = await untilStatus((f) => conditionsOf(f, "extra-a-newer").length > 0);

      // What a user sees: `ambit status`.
      const s = await status();
      const cond = (route: string) =>
        s.conditions?.find((c) => c.object === `HTTPRoute shop/${route}`)?.conditions ?? [];
      t.same(
        cond("extra-unknown-backend"),
        ["Accepted=True (Accepted)", "ResolvedRefs=False (BackendNotFound)"],
        "unknown backend",
      );
      t.same(
        cond("extra-bad-regex"),
        [
          "Accepted=True (Accepted)",
          "PartiallyInvalid=True (UnsupportedValue)",
          "ResolvedRefs=True (ResolvedRefs)",
        ],
        "invalid regex",
      );
      t.same(
        cond("extra-unknown-filter"),
        ["Accepted=True (Accepted)", "ResolvedRefs=False (InvalidKind)"],
        "unknown filter",
      );
      t.same(
        cond("extra-a-newer"),
        [
          "Accepted=True (Accepted)",
          "PartiallyInvalid=True (Conflicted)",
          "ResolvedRefs=True (ResolvedRefs)",
        ],
        "the newer of two conflicting routes",
      );
      t.same(
        cond("extra-z-older"),
        ["Accepted=True (Accepted)", "ResolvedRefs=True (ResolvedRefs)"],
        "the older one wins",
      );
      t.same(
        cond("reviews"),
        ["Accepted=True (Accepted)", "ResolvedRefs=True (ResolvedRefs)"],
        "the other routes are untouched",
      );
      t.ok(
        s.errors.some(
          (e) =>
            e.message.includes("extra-bogus-filter-type") &&
            e.message.includes("spec.rules[0].filters[0].type"),
        ),
        "an unknown filter type is refused, naming the object and the field",
        { errors: s.errors.map((e) => e.message) },
      );
      // The messages (the controller's /debug/status, what the Kubernetes provider writes).
      const msg = (route: string, type: string) =>
        conditionsOf(full, route).find((c) => c.type === type)?.message ?? "";
      t.match(
        msg("extra-unknown-backend", "ResolvedRefs"),
        /spec\.rules\[1\]\.backendRefs\[0\]\.name: Service shop\/no-such-service not found/,
      );
      t.match(
        msg("extra-bad-regex", "PartiallyInvalid"),
        /spec\.rules\[1\]\.matches\[0\]\.path\.value: invalid regular expression/,
      );
      t.match(msg("extra-unknown-filter", "ResolvedRefs"), /example\.com\/Bogus is not supported/);
      t.match(
        msg("extra-a-newer", "PartiallyInvalid"),
        /spec\.rules\[1\]\.matches\[0\]: same match as HTTPRoute shop\/extra-z-older rule 0/,
      );

      const r = byName(
        await run([
          { name: "ok-1", url: "http://extra.shop/ok-1", until: 200, untilMs: 20_000 },
          { name: "ok-2", url: "http://extra.shop/ok-2", n: 2 },
          { name: "ok-3", url: "http://extra.shop/ok-3", n: 2 },
          { name: "ok-4", url: "http://extra.shop/ok-4", n: 2 },
          { name: "unknown", url: "http://extra.shop/unknown-backend", n: 2 },
          { name: "ext", url: "http://extra.shop/ext", n: 2 },
          { name: "same", url: "http://extra.shop/same", n: 5 },
          { name: "bogus", url: "http://extra.shop/bogus", n: 2 },
          { name: "reviews", url: "http://reviews.shop/", n: 100, concurrency: 4 },
          {
            name: "secure",
            url: "http://secure.shop/",
            n: 2,
            headers: { authorization: `Bearer ${jwt.valid}` },
          },
          { name: "broken", url: "http://broken.shop/", n: 2 },
        ]),
      );
      t.equal(r("ok-1").last?.status, 200, "the new routes arrived at the waypoint");
      for (const name of ["ok-2", "ok-3", "ok-4"])
        t.same(r(name).statuses, { 200: 2 }, `the good rule next to a bad one works (${name})`);
      t.same(r("unknown").statuses, { 500: 2 }, "a rule with an unknown backend: 500");
      t.same(r("ext").statuses, { 500: 2 }, "a rule with an unknown filter: 500");
      t.same(r("same").versions, { v1: 5 }, "the conflict goes to the older route (reviews-v1)");
      t.same(
        r("bogus").statuses,
        { 404: 2 },
        "the refused route is absent: no route of extra matches /bogus (404)",
      );
      t.same(r("reviews").statuses, { 200: 100 }, "reviews still answers");
      t.ok((r("reviews").versions.v1 ?? 0) > 60, "with its split");
      t.same(r("secure").statuses, { 200: 2 }, "JWT still accepted on secure");
      t.same(r("broken").statuses, { 418: 2 }, "the abort still applies");

      // Fix the regex while the mesh runs: the condition clears and the rule serves.
      const file = path.join(dir, "bad-input.yaml");
      fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace('"/re/([a-z"', '"/re/([a-z]+)"'));
      const fixed = await untilStatus(
        (f) => !conditionsOf(f, "extra-bad-regex").some((c) => c.type === "PartiallyInvalid"),
      );
      t.same(
        conditionsOf(fixed, "extra-bad-regex").map((c) => c.type),
        ["Accepted", "ResolvedRefs"],
        "fixed: the condition clears",
      );
      const [re] = await run([{ url: "http://extra.shop/re/abc", until: 200, untilMs: 20_000 }]);
      t.equal(re!.last?.status, 200, "and the fixed rule serves");
      // The copies sent to the blackhole earlier are cut off by the mirror's 10 s
      // timeout, each counted when given up: poll until all 20 are (bounded; a
      // loaded machine gives them up over several seconds).
      let given = 0;
      for (const deadline = Date.now() + 45_000; given < 20 && Date.now() < deadline; ) {
        const [m] = await run([
          { ...metricsSpec("m4"), untilIncludes: `cluster="${BLACKHOLE}"`, untilMs: 20_000 },
        ]);
        given = metricSum(textOf(m!), "ambit_waypoint_mirrored_total", { cluster: BLACKHOLE });
        if (given < 20) await new Promise((r) => setTimeout(r, 1000));
      }
      t.equal(given, 20, "the copies the blackhole never answered were given up, not held forever");
    });
    t.comment(`whole test ${((Date.now() - started) / 1000).toFixed(1)} s`);
  },
);

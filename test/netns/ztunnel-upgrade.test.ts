// Zero-drop ztunnel upgrade, for real: a controller, two nodes, a client pod
// and an echo server pod in network namespaces. Long-lived connections are
// held open and a constant load of short connections runs while each node's
// ztunnel is replaced by a new instance: the new one opens its listeners
// alongside the old (SO_REUSEPORT), becomes ready, then the old one stops
// accepting (connections queued on its sockets migrate, tcp_migrate_req) and
// drains: GOAWAY on its HBONE sessions (the peer retries refused streams on
// a new session, replaying their early data), its spliced connections run on.
// Expected: 0 failed requests, 0 reset long-lived connections, and each old
// instance's close() resolves only once its last long-lived connection ended.
// (The instances run in this process: SO_REUSEPORT groups sockets per
// socket, not per process, so the kernel path is the one two processes take;
// `ambit upgrade` in ambit-upgrade.test.ts does it with real processes.)
import { execFile } from "node:child_process";
import type net from "node:net";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import type { ZtunnelApp } from "../../ztunnel/app.js";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { echoRoundTrip, needsRoot, serveIn } from "./netns-fixture.js";
import { inProcessMesh, twoNodeDemoYaml } from "./ztunnel-fixture.js";
import { ShortConnectionLoad } from "./ztunnel-upgrade-load.js";

const VIP = "10.96.7.8";
const LONG_LIVED = Number(process.env.AMBIT_UPGRADE_LONG ?? 1000);
const RPS = Number(process.env.AMBIT_UPGRADE_RPS ?? 500);
// A request with no answer for this long has hung (the defect this test
// guards against); generous, because a loaded CI machine can stall the
// single process that runs both nodes for seconds.
const HANG_MS = Number(process.env.AMBIT_UPGRADE_HANG_MS ?? 20_000);

function meshYaml(ips: Record<string, string>): string {
  return twoNodeDemoYaml(ips, { vip: VIP, portName: "tcp", outsider: false });
}

/** Counters of connections a ztunnel dropped before its proxies saw them (for a failure's diagnosis). */
async function silentRefusals(): Promise<string> {
  const out: string[] = [];
  for (const name of [
    "ambit_node_agent_refused_total",
    "ambit_ztunnel_accept_errors_total",
    "ambit_hbone_accept_errors_total",
  ]) {
    const m = registry.getSingleMetric(name);
    if (!m) continue;
    const values = ((await m.get()) as { values: { labels: object; value: number }[] }).values;
    out.push(`${name} ${JSON.stringify(values.map((v) => [v.labels, v.value]))}`);
  }
  return out.join("; ");
}

/** `ss` in a namespace: listeners (with their accept queues) and the connections of one local port. */
function socketsIn(netnsPath: string, port: number | undefined): Promise<string> {
  const ss = (args: string[]) =>
    new Promise<string>((resolve) =>
      execFile("nsenter", [`--net=${netnsPath}`, "--", "ss", ...args], (_e, out) => resolve(out)),
    );
  return Promise.all([
    ss(["-ltnoe"]),
    ss(["-tnoe", ...(port ? [`( sport = :${port} or dport = :${port} )`] : [])]),
  ]).then(([l, c]) => `${l}\n${c}`);
}

/** Writes `msg` and resolves with the echo (the server answers `echo:<msg>`). */

t.test(
  "ztunnel upgrade under load: no failed request, no reset connection",
  { skip: needsRoot, timeout: 300_000 },
  async (t) => {
    const m = await inProcessMesh(t, {
      nodes: ["node1", "node2"],
      pods: [
        { key: "demo/client", node: "node1" },
        { key: "demo/server", node: "node2" },
      ],
      yaml: meshYaml,
    });
    const client = m.pods["demo/client"]!;
    const server = m.pods["demo/server"]!;
    await serveIn(t, server.netnsPath, 8080, (s) => s.on("data", (d) => s.write(`echo:${d}`)));
    const nodes: Record<"node1" | "node2", ZtunnelApp> = {
      node1: await m.startZtunnel("node1"),
      node2: await m.startZtunnel("node2"),
    };

    // Long-lived connections, each proven end to end before the upgrade.
    const setupStart = Date.now();
    const long: net.Socket[] = [];
    const resets: string[] = [];
    for (let i = 0; i < LONG_LIVED; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, LONG_LIVED - i) }, () =>
          connectInNetns(client.netnsPath, { host: VIP, port: 80 }),
        ),
      );
      batch.forEach((s, k) => {
        const n = i + k;
        s.on("error", (e) => resets.push(`long ${n}: ${e.message}`));
        s.on("close", () => {
          if (!s.closedByTest) resets.push(`long ${n}: closed`);
        });
        long.push(s);
      });
    }
    await Promise.all(long.map((s, i) => echoRoundTrip(s, `hello ${i}`)));
    t.comment(`${LONG_LIVED} long-lived connections up in ${Date.now() - setupStart} ms`);

    // A constant load of short connections (connect, one echo, close) from
    // a separate process in the client pod (ztunnel-upgrade-load.ts).
    const load = new ShortConnectionLoad(client.netnsPath, {
      host: VIP,
      port: 80,
      rps: RPS,
      hangMs: HANG_MS,
    });
    t.teardown(() => load.kill());
    const loadFor = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await loadFor(1000);

    const closes: Promise<void>[] = [];
    let longClosed = false;
    // The server's node first (its HBONE sessions drain with GOAWAY), then the client's.
    for (const node of ["node2", "node1"] as const) {
      const old = nodes[node];
      const successor = await m.startZtunnel(node);
      t.equal(
        successor.agent.pods().length,
        1,
        `${node}: the new ztunnel captured its pod alongside the old one`,
      );
      const busy = load.stats.inflight;
      const startedBefore = load.stats.sent;
      const oldDone = old.close().then(() => {
        m.stopped(old);
        t.ok(
          longClosed,
          `${node}: the old ztunnel finished draining only after the last long-lived connection closed`,
        );
      });
      closes.push(oldDone);
      nodes[node] = successor;
      await loadFor(1500);
      t.ok(
        load.stats.sent > startedBefore,
        `${node}: requests kept starting during the handover (${busy} in flight at it, ${load.stats.sent - startedBefore} started since)`,
      );
      await Promise.all(long.map((s, i) => echoRoundTrip(s, `${node} upgraded ${i}`)));
      t.equal(
        resets.length,
        0,
        `${node}: every long-lived connection still carries data through the draining ztunnel`,
      );
    }
    await loadFor(1000);
    const r = await load.stop();
    t.comment(
      `${r.sent} short requests in ${r.seconds.toFixed(1)} s (${(r.sent / r.seconds).toFixed(0)} rps; ${r.skipped} skipped at the in-flight cap), ${r.ok} answered`,
    );
    // The rate reached depends on the machine (this one process runs both
    // nodes and the server; on a loaded CI box it is far below the target,
    // and the generator then skips rather than piling up): what the test
    // needs is requests across both handovers, asserted above.
    t.ok(r.sent >= 100, `the load ran (${r.sent} requests in ${r.seconds.toFixed(1)} s, target ${RPS} rps)`);
    t.same(r.failures.slice(0, 10), [], `no failed request (${r.failures.length} of ${r.sent})`);
    if (r.failures.length > 0) {
      t.comment(`refused or failed before reaching a proxy: ${await silentRefusals()}`);
      t.comment(`sockets of the client pod now:\n${await socketsIn(client.netnsPath, undefined)}`);
    }

    // The old instances exit once their last long-lived connection closes.
    let settled = false;
    void Promise.all(closes).then(() => {
      settled = true;
    });
    await loadFor(200);
    t.notOk(settled, "old ztunnels keep draining while long-lived connections are open");
    t.ok(
      long.every((s) => !s.destroyed),
      "the long-lived connections are all still open",
    );
    longClosed = true;
    for (const s of long) {
      s.closedByTest = true;
      s.end();
    }
    await Promise.all(closes);
    t.same(resets.slice(0, 10), [], "no long-lived connection was reset");

    // The new ones serve alone.
    const after = await connectInNetns(client.netnsPath, { host: VIP, port: 80 });
    await echoRoundTrip(after, "after");
    after.destroy();
  },
);

declare module "node:net" {
  interface Socket {
    closedByTest?: boolean;
  }
}

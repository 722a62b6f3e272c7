// `ambit upgrade` in the local mesh, as a user runs it: `ambit up` (two
// nodes, ztunnels as real processes), long-lived connections and a constant
// load of short ones from a client pod to a Service, then `ambit upgrade`:
// every node gets a new ztunnel process beside the old one, `ambit status`
// shows the old ones draining, no request fails, no connection is reset, and
// each old process exits once the last connection it carried has closed.
import type net from "node:net";
import t from "tap";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { ambit, testMeshDirs, writeMeshFixture } from "./mesh-fixture.js";
import { echoRoundTrip, needsRoot } from "./netns-fixture.js";
import { ShortConnectionLoad } from "./ztunnel-upgrade-load.js";

const LONG_LIVED = 100;
const RPS = 100;
const HANG_MS = 20_000;

interface Status {
  pods: { key: string; ip: string; ready: boolean }[];
  services: { hostname: string; vips: string[] }[];
  nodes: {
    name: string;
    ip: string;
    ztunnel: { ready: boolean; pod?: string; draining?: { pod: string; pid?: number }[] };
  }[];
}

/** An HTTP request to host:port from inside the namespace: what came back ("" when refused or reset). */
async function probe(netnsPath: string, host: string, port: number): Promise<string> {
  let s: net.Socket;
  try {
    s = await connectInNetns(netnsPath, { host, port, timeoutMs: 5000 });
  } catch {
    return "";
  }
  return new Promise((resolve) => {
    let got = "";
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on("data", (d: Buffer) => {
      got += d.toString();
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.write("GET /config_dump HTTP/1.0\r\n\r\n");
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test(
  "ambit upgrade under load: 0 failed requests, old ztunnels drain and exit",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "upg");
    const { readState } = await import("../../local/state.js");
    writeMeshFixture(dir);
    const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
    t.equal(up.code, 0, "ambit up succeeds", { stderr: up.stderr });
    const status = async (): Promise<Status> =>
      JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as Status;
    const before = await status();
    const vip = before.services.find((s) => s.hostname === "server.mesh.svc.cluster.local")?.vips[0];
    if (!vip) throw new Error("no VIP for mesh/server");
    const clientNetns = readState(meshId)?.pods["mesh/client"]?.netnsPath;
    if (!clientNetns) throw new Error("no mesh/client pod");

    // The ztunnels' admin (15000) and readiness (15021) bind to the node's
    // loopback: a pod reaches neither on its node's address. (Metrics, 15020,
    // listen on the node's address in the local mesh so the dashboard and
    // Prometheus can scrape them: readable from pods, as in Istio.)
    for (const n of before.nodes) {
      for (const port of [15000, 15021]) {
        t.equal(
          await probe(clientNetns, n.ip, port),
          "",
          `a pod gets nothing from ${n.name}'s ztunnel port ${port} (${n.ip})`,
        );
      }
      // The control: the path to the node works (metrics listen on the node's address for the scrapers).
      t.match(
        await probe(clientNetns, n.ip, 15020),
        /^HTTP\/1\.[01] 200/,
        `... while ${n.name}'s metrics port answers`,
      );
    }

    // Long-lived connections, proven end to end.
    const resets: string[] = [];
    const long: (net.Socket & { closedByTest?: boolean })[] = [];
    for (let i = 0; i < LONG_LIVED; i++) {
      const s: net.Socket & { closedByTest?: boolean } = await connectInNetns(clientNetns, {
        host: vip,
        port: 80,
      });
      s.on("error", (e) => resets.push(`long ${i}: ${e.message}`));
      s.on("close", () => {
        if (!s.closedByTest) resets.push(`long ${i}: closed`);
      });
      long.push(s);
    }
    t.teardown(() => {
      for (const s of long) s.destroy();
    });
    await Promise.all(long.map((s, i) => echoRoundTrip(s, `hello ${i}`)));

    // Constant load of short connections, from a separate process in the client pod.
    const load = new ShortConnectionLoad(clientNetns, { host: vip, port: 80, rps: RPS, hangMs: HANG_MS });
    t.teardown(() => load.kill());
    const loadFor = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await loadFor(1000);
    const startedBefore = load.stats.sent;

    const upg = await ambit(runDir, ["upgrade", "--mesh-id", meshId, "--drain-seconds", "120"], 180_000);
    t.equal(upg.code, 0, "ambit upgrade hands over", { stdout: upg.stdout, stderr: upg.stderr });
    t.match(upg.stdout, /node-1: .* drains/, "it says the old ztunnel drains");

    // Both run: the new one serves, the old one drains (it carries the long-lived connections).
    const during = await status();
    const draining = during.nodes.flatMap((n) => n.ztunnel.draining ?? []);
    for (const n of during.nodes) {
      t.ok(n.ztunnel.ready, `${n.name}: the new ztunnel is ready`);
      t.match(n.ztunnel.pod, /-u1$/, `${n.name}: status names the new ztunnel pod`);
      t.equal(n.ztunnel.draining?.length, 1, `${n.name}: status shows the old ztunnel draining`);
    }
    const oldPids = draining.map((d) => d.pid).filter((p): p is number => p !== undefined);
    t.equal(oldPids.length, 2, "the draining ztunnels' pids are known");
    t.ok(oldPids.every(alive), "the old ztunnel processes are alive while connections remain");

    await loadFor(2000);
    await Promise.all(long.map((s, i) => echoRoundTrip(s, `after upgrade ${i}`)));
    const r = await load.stop();
    t.comment(
      `${r.sent} short requests in ${r.seconds.toFixed(1)} s during the upgrade (${r.skipped} skipped at the in-flight cap), ${r.ok} answered`,
    );
    t.ok(r.sent - startedBefore >= 50, "requests kept running through the upgrade");
    t.same(r.failures.slice(0, 10), [], `no failed request (${r.failures.length} of ${r.sent})`);
    t.same(resets.slice(0, 10), [], "no long-lived connection was reset");
    t.ok(oldPids.every(alive), "the old ztunnels still drain while the long-lived connections are open");

    // The last connections close: the old processes exit (well before the 120 s deadline).
    const closedAt = Date.now();
    for (const s of long) {
      s.closedByTest = true;
      s.end();
    }
    for (;;) {
      const st = await status();
      if (oldPids.every((p) => !alive(p)) && st.nodes.every((n) => !n.ztunnel.draining)) break;
      if (Date.now() - closedAt > 60_000) {
        t.fail(
          `old ztunnels still running 60 s after the last connection closed: ${JSON.stringify(st.nodes)}`,
        );
        break;
      }
      await loadFor(250); // a process we did not spawn has no exit event
    }
    t.pass(
      `the old ztunnels exited ${((Date.now() - closedAt) / 1000).toFixed(1)} s after the last connection closed`,
    );

    // The new ones serve alone.
    const after = await connectInNetns(clientNetns, { host: vip, port: 80 });
    await echoRoundTrip(after, "after");
    after.destroy();
    const end = await status();
    t.ok(
      end.nodes.every((n) => n.ztunnel.ready && !n.ztunnel.draining),
      "status: one ready ztunnel per node",
    );
  },
);

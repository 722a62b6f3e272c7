// Admission under memory pressure. The pure parts (the hysteresis decision,
// cgroup v2 parsing, the limit's default), then the whole L4 path on
// loopback with this process's real RSS: a tunnel established before the
// pressure keeps echoing; once the limit is below the RSS, a new connection
// at a pod listener is reset and a new HBONE stream on the pooled session is
// answered 503, both counted in ambit_ztunnel_refused_connections_total
// {reason="memory"}, with one episode (one log line) however many refusals;
// with the limit back, new connections work again.
import { once } from "node:events";
import net from "node:net";
import t from "tap";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import type { IpPort } from "../../core/hbone/types.js";
import { registry } from "../../core/telemetry/metrics.js";
import { parseZtunnelConfig } from "../../ztunnel/config.js";
import { admitWithinFdLimit } from "../../ztunnel/node-agent/accept-errors.js";
import { InboundProxy } from "../../ztunnel/proxy/inbound.js";
import {
  memoryCgroup,
  MemoryAdmission,
  memoryAdmission,
  nextPressure,
  parseMemoryMax,
  resolveMemoryLimit,
  workingSet,
} from "../../ztunnel/proxy/memory-pressure.js";
import { OutboundProxy } from "../../ztunnel/proxy/outbound.js";
import { MeshState, workloadIdentity } from "../../ztunnel/state/mesh-state.js";
import { makePki } from "./fixtures-pki.js";
import { connectFrom, dial, loopbackNet, service, TestApp, workload } from "./fixtures-ztunnel.js";

const MB = 1024 * 1024;

t.test("decision: enters at the limit, leaves only below 90% of it (no flapping)", async (t) => {
  const limit = 100 * MB;
  t.equal(nextPressure(false, 99 * MB, limit), false, "below the limit: admit");
  t.equal(nextPressure(false, 100 * MB, limit), true, "at the limit: pressure");
  t.equal(nextPressure(true, 95 * MB, limit), true, "just below the limit: still pressure");
  t.equal(nextPressure(true, 90 * MB, limit), true, "at 90%: still pressure");
  t.equal(nextPressure(true, 89 * MB, limit), false, "below 90%: over");
  t.equal(nextPressure(false, 95 * MB, limit), false, "rising again below the limit: admit");
  t.equal(nextPressure(true, 1000 * MB, undefined), false, "no limit: never");
  t.equal(nextPressure(false, 1000 * MB, 0), false, "limit 0: off");
  // A usage oscillating around the limit gives one episode, not one per crossing.
  let p = false;
  let episodes = 0;
  for (const used of [99, 101, 99, 101, 98, 100, 97, 95, 92, 91, 89, 99, 91]) {
    const next = nextPressure(p, used * MB, limit);
    if (next && !p) episodes++;
    p = next;
  }
  t.equal(episodes, 1, "one episode across the oscillation");
  t.equal(p, false);
});

t.test("the limit: the flag, else 90% of the cgroup's memory.max, else off", async (t) => {
  t.equal(resolveMemoryLimit(200, undefined), 200 * MB);
  t.equal(resolveMemoryLimit(200, 1000 * MB), 200 * MB, "the flag wins over the cgroup");
  t.equal(resolveMemoryLimit(0, 1000 * MB), undefined, "0: off");
  t.equal(resolveMemoryLimit(undefined, 1000 * MB), 900 * MB);
  t.equal(resolveMemoryLimit(undefined, undefined), undefined, "no flag, no cgroup limit: off");
  t.equal(parseMemoryMax("max\n"), undefined);
  t.equal(parseMemoryMax("536870912\n"), 536870912);
  t.equal(parseMemoryMax(""), undefined);
  t.equal(parseMemoryMax("9223372036854771712\n"), undefined, "cgroup v1's no-limit value");
  const all = () => true;
  t.same(memoryCgroup("0::/kubepods/pod1/abc\n", all), { version: 2, dir: "/sys/fs/cgroup/kubepods/pod1/abc" });
  t.same(memoryCgroup("0::/\n", all), { version: 2, dir: "/sys/fs/cgroup" });
  t.same(memoryCgroup("4:memory:/x\n1:cpu:/\n", all), { version: 1, dir: "/sys/fs/cgroup/memory/x" }, "cgroup v1");
  t.same(
    memoryCgroup("5:cpu,memory:/x\n0::/\n", all),
    { version: 1, dir: "/sys/fs/cgroup/memory/x" },
    "hybrid: memory stays on v1",
  );
  t.same(
    memoryCgroup("4:memory:/kubepods/pod1\n", () => false),
    { version: 1, dir: "/sys/fs/cgroup/memory" },
    "the host's path is not mounted in a container: its own cgroup is the mount root",
  );
  t.equal(memoryCgroup("1:cpu:/\n", all), undefined, "no memory controller");
  t.equal(workingSet("1000\n", "anon 10\ninactive_file 300\nactive_file 5\n"), 700);
  t.equal(workingSet("1000\n", "anon 10\n"), 1000);
  t.equal(workingSet("1000\n", "inactive_file 5\ntotal_inactive_file 300\n", 1), 700, "v1: the hierarchical count");
});

t.test("--memory-limit-mb / AMBIT_MEMORY_LIMIT_MB", async (t) => {
  const base = ["--node", "n1", "--xds", "127.0.0.1:15010"];
  const cfg = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseZtunnelConfig([...base, ...argv], env);
  t.match(cfg(["--memory-limit-mb", "256"]), { memoryLimitMb: 256 });
  t.match(cfg([], { AMBIT_MEMORY_LIMIT_MB: "0" }), { memoryLimitMb: 0 });
  t.notOk((cfg([]) as { memoryLimitMb?: number }).memoryLimitMb !== undefined, "absent: the cgroup default");
  t.throws(() => cfg(["--memory-limit-mb", "lots"]), /memory-limit-mb/);
});

t.test(
  "a sampler with a limit below the RSS is under pressure from its first sample; 0 is off",
  async (t) => {
    const m = new MemoryAdmission();
    t.teardown(() => m.close());
    m.start({ limitMb: 1, sampleMs: 60_000 });
    t.ok(m.underPressure);
    t.equal(m.admit("unit"), false);
    m.setLimitMb(0);
    t.notOk(m.underPressure);
    t.equal(m.admit("unit"), true);
  },
);

// ---- the loopback L4 path ----
const ip = loopbackNet();
const CLIENT_IP = ip(10);
const SERVER_IP = ip(20);
const pki = await makePki();
const certs = pki.source();
const app = new TestApp();
const APP_PORT = await app.listen(SERVER_IP);
const client = workload({ name: "client", namespace: "a", ip: CLIENT_IP, node: "node-1" });
const svc = service({ name: "svc", namespace: "b", vip: ip(100), port: 80, targetPort: APP_PORT });
const server = workload({
  name: "server",
  namespace: "b",
  ip: SERVER_IP,
  node: "node-2",
  services: { [svc.key]: [{ servicePort: 80, targetPort: APP_PORT }] },
});
const state = new MeshState();
state.applyAddresses([svc, client, server]);
const hbone = new HboneClient({ certs, bindSourceIp: true });
const outbound = new OutboundProxy({ state, hbone });
const inbound = new InboundProxy({ state, node: "node-2" });
const hboneServer = new HboneServer({ handler: inbound.handler });
await hboneServer.listen(
  { host: SERVER_IP, port: 15008 },
  { cert: () => certs.get(workloadIdentity(server)), podUid: server.uid, name: "server" },
);
const origDst: IpPort = { ip: svc.vips[0]!, port: 80 };
/** The pod's 15001 listener as the node agent opens it: admission first. */
const captureAdmitted = net.createServer(
  { allowHalfOpen: true },
  admitWithinFdLimit("outbound", (s) => outbound.handleOutbound(s, { origDst, source: client })),
);
/** Without the listener's admission: the connection reaches the pooled HBONE session, the inbound side decides. */
const captureBare = net.createServer({ allowHalfOpen: true }, (s) =>
  outbound.handleOutbound(s, { origDst, source: client }),
);
for (const s of [captureAdmitted, captureBare]) {
  s.listen(0, CLIENT_IP);
  await once(s, "listening");
}
const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;
t.teardown(async () => {
  memoryAdmission.close();
  captureAdmitted.close();
  captureBare.close();
  hbone.destroy();
  await hboneServer.close();
  await app.close();
});

const refusedFor = async (listener: string) =>
  ((await registry.getSingleMetric("ambit_ztunnel_refused_connections_total")?.get())?.values ?? [])
    .filter((v) => v.labels.listener === listener && v.labels.reason === "memory")
    .reduce((a, v) => a + v.value, 0);

async function echo(s: net.Socket, text: string): Promise<void> {
  const got = new Promise<string>((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.length >= text.length) {
        s.off("data", onData);
        resolve(buf);
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error(`closed after '${buf}'`)));
  });
  s.write(text);
  if ((await got) !== text) throw new Error(`echo mismatch: ${await got}`);
}

t.test(
  "under pressure: new connections refused and counted, the established tunnel keeps echoing",
  async (t) => {
    const rss = Math.ceil(process.memoryUsage.rss() / MB);
    // Sampled every 20 ms so the test sees many samples during the episode.
    memoryAdmission.start({ limitMb: rss * 4 + 1024, sampleMs: 20 });
    const episodes: string[] = [];
    memoryAdmission.on("pressure", () => episodes.push("pressure"));
    memoryAdmission.on("relief", () => episodes.push("relief"));

    const established = await connectFrom(CLIENT_IP, CLIENT_IP, portOf(captureAdmitted));
    t.teardown(() => established.destroy());
    await echo(established, "before");
    t.pass("a tunnel established before the pressure");

    const atListener = await refusedFor("outbound");
    const atStream = await refusedFor("hbone_stream");
    memoryAdmission.setLimitMb(1); // far below this process's RSS
    t.ok(memoryAdmission.underPressure, "under pressure once the limit is below the RSS");

    for (let i = 0; i < 5; i++) {
      const { done } = dial(CLIENT_IP, CLIENT_IP, portOf(captureAdmitted));
      const r = await done;
      t.equal(r.data, "", `new connection ${i} at the pod listener got no bytes`);
    }
    t.equal(
      (await refusedFor("outbound")) - atListener,
      5,
      'each counted {listener="outbound",reason="memory"}',
    );

    const { s: viaPool, done: poolDone } = dial(CLIENT_IP, CLIENT_IP, portOf(captureBare));
    viaPool.write("x");
    const r = await poolDone;
    t.equal(r.data, "", "a new stream on the pooled HBONE session never reached the application");
    t.equal((await refusedFor("hbone_stream")) - atStream, 1, 'counted {listener="hbone_stream"}');

    // Samples keep coming (every 20 ms) while the established tunnel works: still one episode.
    for (let i = 0; i < 10; i++) {
      await echo(established, `during-${i}`);
      await new Promise((res) => setTimeout(res, 25));
    }
    t.pass("the established tunnel kept echoing under pressure");
    t.same(episodes, ["pressure"], "one episode (one log line) for all those refusals and samples");

    memoryAdmission.setLimitMb(rss * 4 + 1024);
    t.same(episodes, ["pressure", "relief"], "the episode ends once the limit is back above the use");
    const again = await connectFrom(CLIENT_IP, CLIENT_IP, portOf(captureAdmitted));
    t.teardown(() => again.destroy());
    await echo(again, "after");
    t.pass("new connections admitted again");
    await echo(established, "still");
    t.pass("and the established tunnel is still open");
  },
);

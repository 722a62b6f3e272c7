// The client node's ztunnel under memory pressure, with long-lived
// connections open: once its memory limit (AMBIT_MEMORY_LIMIT_MB, lowered at
// run time through its admin /memory?limit_mb= to below what it uses) is
// exceeded, it refuses new connections (counted in
// ambit_ztunnel_refused_connections_total{reason="memory"}, one log line for
// the episode however many refusals), keeps every established connection
// echoing, and admits new connections again once the pressure is over.
import t from "tap";
import { adminGet } from "../../local/supervisor-logs.js";
import { meshPaths } from "../../local/supervisor-plan.js";
import { metricValue, startFaultMesh } from "./fault-fixture.js";
import { needsRoot } from "./netns-fixture.js";

interface MemoryStatus {
  pressured: boolean;
  usedMb?: number;
  limitMb?: number;
  source?: string;
}

/** Polls a component's log (the ztunnel writes it asynchronously) until pred holds. */
async function logUntil(
  read: () => string,
  pred: (lines: string[]) => boolean,
  what: string,
): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = read().split("\n");
    if (pred(lines)) return lines;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test(
  "ztunnel under memory pressure refuses new connections, counted and logged once, and keeps the open ones",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const started = Date.now();
    const mesh = await startFaultMesh(t, { env: { AMBIT_MEMORY_LIMIT_MB: "4096" } });
    t.comment(`mesh up in ${Date.now() - started} ms`);
    const status = JSON.parse((await mesh.cli(["status", "--json"])).stdout) as {
      services: { hostname: string; vips: string[] }[];
    };
    const vip = status.services.find((s) => s.hostname === "server.mesh.svc.cluster.local")?.vips[0];
    t.ok(vip, "the Service has a VIP");
    const target = { host: vip!, port: 80 };
    const keep = await mesh.traffic(t, "mesh/client", { ...target, long: 10, rate: 0 });

    const admin = meshPaths(mesh.meshId).ztunnelSocket("node-1");
    const memory = async (query = "") =>
      JSON.parse((await adminGet(admin, `/memory${query}`)).body) as MemoryStatus;
    const initial = await memory();
    t.match(
      initial,
      { pressured: false, limitMb: 4096 },
      "the limit from AMBIT_MEMORY_LIMIT_MB, no pressure",
    );
    t.comment(`ztunnel-node-1 uses ${initial.usedMb} MB (${initial.source})`);

    const name = "ambit_ztunnel_refused_connections_total";
    const before = metricValue(await mesh.ztunnelMetrics("node-1"), name, { reason: "memory" });
    const pid = mesh.pid("ztunnel-node-1");
    const pressureFrom = Date.now();
    t.match(await memory("?limit_mb=1"), { pressured: true, limitMb: 1 }, "under pressure below its use");

    const flood = await mesh.traffic(t, "mesh/client", { ...target, long: 0, rate: 10, timeoutMs: 2000 });
    await flood.until(() => flood.shortsSince(pressureFrom).failed >= 20, 30_000, "new connections refused");
    const pressureTo = Date.now();
    const refused = flood.shortsSince(pressureFrom, pressureTo);
    t.equal(refused.ok, 0, `no new connection admitted under pressure: ${JSON.stringify(refused)}`);
    t.equal(mesh.pid("ztunnel-node-1"), pid, "the ztunnel did not crash or restart");
    t.same(keep.drops(), [], "no established connection dropped");
    const stall = keep.maxStallMs(pressureFrom, pressureTo);
    t.ok(stall < 2000, `established connections kept echoing (longest wait ${stall} ms)`);

    const counted = metricValue(await mesh.ztunnelMetrics("node-1"), name, { reason: "memory" }) - before;
    t.ok(counted >= refused.failed, `${name}{reason="memory"} counted ${counted} refusals`);
    const log = () => mesh.log("ztunnel-node-1");
    const episodeLines = (lines: string[]) =>
      lines.filter((l) => l.includes("memory pressure: refusing new connections"));
    const lines = await logUntil(log, (l) => episodeLines(l).length > 0, "the pressure's log line");
    t.equal(episodeLines(lines).length, 1, `one log line for ${counted} refusals`);

    t.match(await memory("?limit_mb=4096"), { pressured: false }, "the pressure is over");
    const relief = Date.now();
    await flood.until(() => flood.lastShorts(10, true), 30_000, "new connections to work again");
    t.ok(flood.shortsSince(relief).ok >= 10, "new connections admitted again");
    await logUntil(log, (l) => l.some((x) => x.includes("memory pressure over")), "the episode's end line");
    t.pass("a log line ends the episode");

    await flood.stop();
    const report = await keep.stop();
    t.ok(
      report?.longs?.every((l) => l.open && l.echoed === l.sent),
      "every established connection open at the end, every ping echoed",
    );
    t.comment(`total ${Date.now() - started} ms`);
  },
);

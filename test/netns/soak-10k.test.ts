// #11 section 4: 10,000 concurrent tunnelled connections through one ztunnel
// pair, held for AMBIT_SOAK_10K_MINUTES (default 10) with traffic on each (a
// 16-byte echo round trip per connection every 30 s), none dropped. The
// ztunnels run as their own processes (as `ambit up` runs them); their RSS
// and open descriptors are printed as tap comments and compared with nothing:
// this test asserts correctness (0 dropped, every connection tunnelled and
// exercised), never timing or memory. AMBIT_SOAK_10K_CONNECTIONS changes the
// count (e.g. for a quick local run).
import t from "tap";
import { runHeldConns, startSoakMesh } from "../../bench/soak-mesh.js";
import { needsRoot, testMeshId } from "./netns-fixture.js";

const minutes = Number(process.env.AMBIT_SOAK_10K_MINUTES ?? 10);
const connections = Number(process.env.AMBIT_SOAK_10K_CONNECTIONS ?? 10_000);
const EVERY_SECONDS = 30;

t.test(
  `${connections} tunnelled connections held ${minutes} min with traffic: none dropped`,
  { skip: needsRoot, timeout: (minutes * 60 + 600) * 1000 },
  async (t) => {
    const mesh = await startSoakMesh(testMeshId(), (m) => t.comment(m));
    t.teardown(() => mesh.close());
    const fmt = (r: Record<string, number>, unit: string) =>
      Object.entries(r)
        .map(([n, v]) => `${n} ${v.toFixed(1)} ${unit}`)
        .join(", ");
    const openedBefore = await mesh.connectionsOpened();
    t.comment(`ztunnel RSS at start: ${fmt(mesh.rss(), "MB")}`);
    let checkedTunnelled = false;
    const done = await runHeldConns(
      mesh,
      {
        connections,
        concurrency: 64,
        holdSeconds: Math.round(minutes * 60),
        everySeconds: Math.min(EVERY_SECONDS, Math.max(1, Math.round((minutes * 60) / 4))),
      },
      async (r) => {
        if (r.phase === "opened") {
          t.comment(
            `opened ${r.opened} in ${r.setupSeconds?.toFixed(1)} s (${r.setupErrors} setup errors); ztunnel RSS ${fmt(mesh.rss(), "MB")}, fds ${fmt(mesh.fds(), "")}`,
          );
          // Every connection crossed both ztunnels (capture did not silently fail).
          const opened = await mesh.connectionsOpened();
          for (const z of mesh.ztunnels) {
            t.ok(
              (opened[z.node] ?? 0) - (openedBefore[z.node] ?? 0) >= connections,
              `ztunnel ${z.node} opened every connection (${(opened[z.node] ?? 0) - (openedBefore[z.node] ?? 0)})`,
            );
          }
          checkedTunnelled = true;
        } else {
          t.comment(
            `${r.phase}: held ${r.held}, dropped ${r.dropped}, exchanges ${r.exchanges}; ztunnel RSS ${fmt(mesh.rss(), "MB")}, fds ${fmt(mesh.fds(), "")}`,
          );
        }
      },
    );
    t.ok(checkedTunnelled, "the connections were checked as tunnelled once opened");
    t.equal(done.setupErrors, 0, "every connection was set up");
    t.equal(done.opened, connections, `${connections} connections opened`);
    t.equal(done.dropped, 0, `none dropped (${JSON.stringify(done.dropReasons)})`);
    t.equal(done.wrongEcho, 0, "every echo was right");
    t.ok((done.minExchangesPerConnection ?? 0) >= 1, "every connection carried traffic while held");
    t.comment(`ztunnel RSS at the end: ${fmt(mesh.rss(), "MB")}`);
  },
);

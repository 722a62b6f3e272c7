// `ambit check`'s health checks against a real controller (admin on a Unix
// socket, as in a local mesh): a rejected object and a node whose ztunnel is
// not connected are problems with what to do; once a proxy for that node is
// connected and has ACKed, it is in sync; the controller gone is one problem.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { health } from "../../cli/commands/check.js";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";
import { setLevel } from "../../core/telemetry/logger.js";
import { DeltaAdsClient } from "../../core/xds/client.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";

setLevel("error");

const YAML = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-1
  containers: [{ name: web, command: ["true"] }]
status: { podIP: 10.213.1.5 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ port: 80, targetPort: 99999 }]
`;

t.test("health: rejected objects, unconnected and connected ztunnels, controller gone", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ambit-check-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const yamlDir = join(dir, "yaml");
  await import("node:fs/promises").then((fs) => fs.mkdir(yamlDir));
  await writeFile(join(yamlDir, "shop.yaml"), YAML);
  const socket = join(dir, "controller.sock");
  const cfg = parseControllerConfig([
    "--config-dir",
    yamlDir,
    "--ca-dir",
    join(dir, "ca"),
    "--listen",
    "127.0.0.1",
    "--xds-port",
    "0",
    "--secure-port=-1",
    "--admin-port=-1",
    "--admin-socket",
    socket,
  ]);
  if (cfg === "help") throw new Error("unexpected help");
  const app = new ControllerApp(cfg);
  await app.start();
  let closed = false;
  t.teardown(() => (closed ? undefined : app.close()));
  const controller = { socket };

  const first = await health(controller, ["node-1"], {});
  t.match(
    first.find((r) => r.name === "controller reachable"),
    { ok: true },
  );
  const rejected = first.filter((r) => r.name === "rejected object");
  t.ok(rejected.length >= 1, "the bad targetPort is a problem");
  t.match(rejected[0], {
    ok: false,
    detail: /Service shop\/web.*targetPort/,
    fix: /fix that object and field/,
  });
  t.match(
    first.find((r) => r.name === "ztunnel node-1 connected"),
    { ok: false, fix: /ambit logs ztunnel-node-1/ },
  );

  const client = new DeltaAdsClient({
    address: `127.0.0.1:${app.ports.xds}`,
    node: {
      id: "ztunnel~node-1~ztunnel-node-1.ambit-system~ambit-system.svc.cluster.local",
      metadata: { NODE_NAME: "node-1" },
    },
    handlers: [
      { typeUrl: ADDRESS_TYPE, apply() {} },
      { typeUrl: AUTHORIZATION_TYPE, apply() {} },
    ],
  });
  client.start();
  t.teardown(() => client.close());
  await client.ready();
  // In sync once the server has processed both ACKs.
  let synced: Awaited<ReturnType<typeof health>> = [];
  for (let i = 0; i < 200; i++) {
    synced = await health(controller, ["node-1"], {});
    if (synced.some((r) => r.ok && r.name.startsWith("ztunnel node-1 connected and in sync"))) break;
    await new Promise((r) => setImmediate(r));
  }
  t.match(
    synced.find((r) => r.name.startsWith("ztunnel node-1")),
    { ok: true, name: /in sync \(2 types ACKed\)/ },
  );

  closed = true;
  await app.close();
  const gone = await health(controller, ["node-1"], {});
  t.same(
    gone.map((r) => [r.name, r.ok]),
    [["controller reachable", false]],
    "one problem: nothing else can be asked",
  );
});

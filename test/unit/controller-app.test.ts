// The controller as a user runs it (`ambit controller --config-dir DIR`): a
// client written from the protos receives the directory's workloads and
// services over delta xDS, sees a file change as a delta, and gets
// certificates for pods of its own node only.
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";
import { type Address, AddressSchema } from "../../core/gen/workload_pb.js";
import { DeltaAdsClient, type XdsUpdate } from "../../core/xds/client.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";

const yaml = (replicas: number) => `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-1
  serviceAccountName: web
  containers: [{ name: web, command: ["true"], ports: [{ name: http, containerPort: 8080 }] }]
status: { podIP: 10.213.1.5 }
---
apiVersion: v1
kind: Pod
metadata: { name: db-0, namespace: shop, labels: { app: db } }
spec:
  nodeName: node-2
  containers: [{ name: db, command: ["true"] }]
status: { podIP: 10.213.2.5 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
${replicas > 1 ? `---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-2
  serviceAccountName: web
  containers: [{ name: web, command: ["true"], ports: [{ name: http, containerPort: 8080 }] }]
status: { podIP: 10.213.2.6 }
` : ""}`;

t.test("controller serves a directory over xDS and signs node-local identities", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ambit-ctl-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "shop.yaml"), yaml(1));
  await writeFile(join(dir, "tokens.json"), JSON.stringify({ "tok-node-1-0123456789abcdef": "node-1" }));
  const cfg = parseControllerConfig([
    "--config-dir", join(dir),
    "--ca-dir", join(dir, "ca"),
    "--tokens-file", join(dir, "tokens.json"),
    "--listen", "127.0.0.1",
    "--xds-port", "0",
    "--secure-port", "0",
    "--admin-port=-1",
  ]);
  if (cfg === "help") throw new Error("unexpected help");
  // The YAML directory also holds tokens.json: keep the CA outside what the provider reads.
  const app = new ControllerApp(cfg);
  await app.start();
  t.teardown(() => app.close());

  const addresses = new Map<string, Address>();
  const updates: XdsUpdate[] = [];
  const client = new DeltaAdsClient({
    address: `127.0.0.1:${app.ports.xds}`,
    node: { id: "ztunnel~10.213.0.10~ztunnel-x.ambit-system~ambit-system.svc.cluster.local", metadata: { NODE_NAME: "node-1" } },
    handlers: [
      {
        typeUrl: ADDRESS_TYPE,
        apply(u) {
          updates.push(u);
          for (const a of u.added) addresses.set(a.name, anyUnpack(a.resource, AddressSchema)!);
          for (const r of u.removed) addresses.delete(r);
        },
      },
      { typeUrl: AUTHORIZATION_TYPE, apply() {} },
    ],
  });
  client.start();
  t.teardown(() => client.close());
  await client.ready();

  t.ok(addresses.has("Kubernetes//v1/Pod/shop/web-0"), "workload named as istiod names it");
  t.ok(addresses.has("shop/web.shop.svc.cluster.local"), "service keyed <ns>/<hostname>");
  const web0 = addresses.get("Kubernetes//v1/Pod/shop/web-0")!;
  t.equal(web0.type.case, "workload");
  if (web0.type.case === "workload") {
    t.equal(web0.type.value.serviceAccount, "web");
    t.equal(web0.type.value.node, "node-1");
    t.equal(web0.type.value.tunnelProtocol, 1, "enrolled: HBONE");
    t.same(web0.type.value.services["shop/web.shop.svc.cluster.local"]?.ports.map((p) => [p.servicePort, p.targetPort]), [[80, 8080]]);
  }

  // A file change arrives as exactly the delta: one new workload (and the service whose endpoints... stays the same resource).
  updates.length = 0;
  const got = once(client, "ack");
  await writeFile(join(dir, "shop.yaml"), yaml(2));
  await got;
  const added = updates.flatMap((u) => u.added.map((a) => a.name));
  t.same(added, ["Kubernetes//v1/Pod/shop/web-1"], "only the new pod is sent");
  t.same(updates.flatMap((u) => u.removed), []);

  // Certificates: a pod on the caller's node is signed; one on another node is refused.
  const ca = new CaClient({ address: `127.0.0.1:${app.ports.xds}`, token: "tok-node-1-0123456789abcdef" });
  const cert = await ca.fetch("spiffe://cluster.local/ns/shop/sa/web");
  t.match(cert.certChainPem[0], /BEGIN CERTIFICATE/);
  t.ok(cert.notAfter.getTime() - Date.now() > 23 * 3600_000, "24h default lifetime");
  await t.rejects(ca.fetch("spiffe://cluster.local/ns/shop/sa/default"), /node/, "db runs on node-2 only");
  const stranger = new CaClient({ address: `127.0.0.1:${app.ports.xds}`, token: "nope-0123456789abcdef" });
  await t.rejects(stranger.fetch("spiffe://cluster.local/ns/shop/sa/web"), /UNAUTHENTICATED|token/i);
});

// The waypoint process wiring, in-process: a real CA issues its certificate,
// a real delta ADS server gives it a WaypointService, a client with its own
// CA-issued identity tunnels HBONE to it and gets routed to a backend; the
// admin config dump and readiness answer.
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import t from "tap";
import { HboneClient } from "../../core/hbone/client.js";
import { WaypointApp } from "../../waypoint/app.js";
import { encodeServiceAny, WAYPOINT_SERVICE_TYPE_URL } from "../../waypoint/config-codec.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";
import { CertManager } from "../../ztunnel/certs/manager.js";
import { NODE1_TOKEN, startCa, TD, tempDir } from "./ca-harness.js";
import { loopbackNet } from "./fixtures-ztunnel.js";
import { cluster, cname, route, service } from "./waypoint-harness.js";
import { startAds } from "./xds-harness.js";

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

async function getText(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get({ host: "127.0.0.1", port, path }, resolve).on("error", reject),
  );
  let body = "";
  for await (const c of res) body += c;
  return { status: res.statusCode ?? 0, body };
}

t.test("WaypointApp: CA certificate, xDS config, HBONE in, routed out, admin", async (t) => {
  const dir = await tempDir(t);
  const ca = await startCa({
    dir,
    pods: {
      "node-1": [
        { namespace: "default", serviceAccount: "waypoint" },
        { namespace: "default", serviceAccount: "client" },
      ],
    },
  });
  t.teardown(() => ca.close());
  const tokenFile = join(dir, "token");
  await writeFile(tokenFile, NODE1_TOKEN);
  const ads = await startAds();
  t.teardown(() => ads.close());

  const app = http.createServer((req, res) => res.end(`backend saw ${req.url}`));
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        app.close(() => r());
        app.closeAllConnections();
      }),
  );
  const svc = service({
    gateway: "default/waypoint",
    clusters: [cluster("web", [(app.address() as AddressInfo).port])],
    routes: [route("r", { backends: [{ cluster: cname("web"), weight: 1 }] })],
  });
  ads.ads.publish(WAYPOINT_SERVICE_TYPE_URL, new Map([[svc.key, encodeServiceAny(svc)]]));

  const podIp = loopbackNet()(2);
  const adminPort = await freePort();
  const readinessPort = await freePort();
  const wapp = new WaypointApp({
    namespace: "default",
    name: "waypoint",
    xdsAddress: ads.address,
    caAddress: ca.address,
    tokenFile,
    trustDomain: TD,
    serviceAccount: "waypoint",
    podIp,
    hbonePort: 15008,
    plainPort: 0,
    adminHost: "127.0.0.1",
    adminPort,
    metricsPort: 0,
    readinessPort,
    accessLogSample: 0,
    drainSeconds: 1,
    certTtlSeconds: 0,
  });
  await wapp.start();
  t.teardown(() => wapp.close());
  t.equal((await getText(readinessPort, "/")).status, 200, "ready");

  const clientCerts = new CertManager({
    client: new CaClient({ address: ca.address, token: NODE1_TOKEN }),
    trustDomain: TD,
  });
  clientCerts.start();
  t.teardown(() => clientCerts.close());
  const hbone = new HboneClient({ certs: { get: (id) => clientCerts.get(id) } });
  t.teardown(() => hbone.destroy());
  const tunnel = await hbone.connect({
    srcIdentity: `spiffe://${TD}/ns/default/sa/client`,
    srcIp: "",
    dstIdentity: wapp.identity,
    dstIp: podIp,
    dstPort: 15008,
    authority: `${svc.vips[0]}:80`,
  });
  const req = http.request({
    path: "/through",
    headers: { host: "web" },
    createConnection: () => tunnel as unknown as net.Socket,
  });
  req.end();
  const [res] = (await once(req, "response")) as [http.IncomingMessage];
  let body = "";
  for await (const c of res) body += c;
  t.equal(res.statusCode, 200);
  t.equal(body, "backend saw /through");
  tunnel.destroy();

  const dump = JSON.parse((await getText(adminPort, "/config_dump")).body);
  t.equal(dump.gateway, "default/waypoint");
  t.equal(dump.identity, `spiffe://${TD}/ns/default/sa/waypoint`);
  t.same(
    dump.services.map((s: { key: string }) => s.key),
    [svc.key],
  );
  t.equal(dump.clusters[0].name, cname("web"));
});

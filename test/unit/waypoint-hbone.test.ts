// The waypoint on its production path, in one process on loopback: a client
// opens HBONE (mTLS, HTTP/2 CONNECT) to the waypoint with :authority VIP:80,
// speaks HTTP/1.1 in the tunnel; the waypoint authorizes on the client's
// SPIFFE identity, routes, and opens its own HBONE to the endpoint's
// "ztunnel", which checks the waypoint's identity and connects the backend.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import t from "tap";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import { registry } from "../../core/telemetry/metrics.js";
import { HboneUpstream } from "../../waypoint/upstream/hbone-upstream.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";
import { cluster, cname, route, service } from "./waypoint-harness.js";

const ip = loopbackNet();
const WAYPOINT_IP = ip(2);
const POD_IP = ip(3);
const CLIENT = spiffe("default", "client");
const INTRUDER = spiffe("other", "intruder");
const WAYPOINT = spiffe("default", "waypoint");
const BACKEND = spiffe("default", "web");

t.test("client → HBONE → waypoint (L7 authz on peer identity) → HBONE → backend", async (t) => {
  const pki = await makePki();
  const certs = pki.source();
  // the backend and its node's "ztunnel": HBONE in, plain TCP to the app
  const app = http.createServer((req, res) =>
    res.end(JSON.stringify({ url: req.url, host: req.headers.host })),
  );
  await new Promise<void>((r) => app.listen(0, POD_IP, r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        app.close(() => r());
        app.closeAllConnections();
      }),
  );
  const peers: (string | undefined)[] = [];
  const ztunnel = new HboneServer({
    handler: (stream, info) => {
      peers.push(info.peerIdentity);
      const s = net.connect(info.authority.port, info.authority.ip, () => {
        stream.respond({ ":status": 200 });
        stream.pipe(s);
        s.pipe(stream);
      });
      s.on("error", () => stream.destroy());
      stream.on("close", () => s.destroy());
    },
  });
  const zl = await ztunnel.listen({ host: POD_IP, port: 0 }, { cert: () => certs.get(BACKEND), name: "pod" });
  t.teardown(() => ztunnel.close());

  // the waypoint
  const wpClient = new HboneClient({ certs, connectTimeoutMs: 3000 });
  t.teardown(() => wpClient.destroy());
  const wp = new Waypoint({
    upstream: (state) =>
      new HboneUpstream({
        client: wpClient,
        identity: WAYPOINT,
        ip: "",
        identityOf: (i, p) => state.identityOf(i, p),
        hbonePort: zl.address().port,
      }),
  });
  await wp.start();
  t.teardown(() => wp.close());
  const appPort = (app.address() as AddressInfo).port;
  wp.applyServices([
    service({
      clusters: [cluster("web", [], { endpoints: [{ ip: POD_IP, port: appPort, identity: BACKEND }] })],
      routes: [route("r", { backends: [{ cluster: cname("web"), weight: 1 }] })],
      authz: [
        {
          name: "default/only-client",
          action: "ALLOW",
          rules: [{ from: [{ principals: ["cluster.local/ns/default/sa/client"] }], to: [], when: [] }],
        },
      ],
    }),
  ]);
  const wpServer = new HboneServer({
    handler: (stream, info) => {
      stream.respond({ ":status": 200 });
      wp.serveStream(stream, {
        ...(info.peerIdentity ? { peerIdentity: info.peerIdentity } : {}),
        dst: info.authority,
        sourceIp: info.peerAddress,
      });
    },
  });
  const wl = await wpServer.listen(
    { host: WAYPOINT_IP, port: 0 },
    { cert: () => certs.get(WAYPOINT), name: "waypoint" },
  );
  t.teardown(() => wpServer.close());

  const client = new HboneClient({ certs, connectTimeoutMs: 3000 });
  t.teardown(() => client.destroy());
  const get = async (identity: string, path: string) => {
    const tunnel = await client.connect({
      srcIdentity: identity,
      srcIp: "",
      dstIdentity: WAYPOINT,
      dstIp: WAYPOINT_IP,
      dstPort: wl.address().port,
      authority: "10.96.0.10:80",
    });
    const req = http.request({
      path,
      headers: { host: "web.default" },
      createConnection: () => tunnel as unknown as net.Socket,
    });
    req.end();
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    let body = "";
    for await (const c of res) body += c;
    tunnel.destroy();
    return { status: res.statusCode, body };
  };
  const ok = await get(CLIENT, "/hello");
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.body), { url: "/hello", host: "web.default" });
  t.same(peers, [WAYPOINT], "the backend's ztunnel sees the waypoint's identity");
  const denied = await get(INTRUDER, "/hello");
  t.equal(denied.status, 403, "L7 authz on the caller's SPIFFE identity");
  const metrics = await registry.getSingleMetric("istio_requests_total")!.get();
  t.ok(
    metrics.values.some(
      (v) =>
        v.labels.source_principal === CLIENT &&
        v.labels.response_code === "200" &&
        v.labels.connection_security_policy === "mutual_tls",
    ),
    "request metrics carry the source principal",
  );
});

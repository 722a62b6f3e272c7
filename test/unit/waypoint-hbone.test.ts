// The waypoint on its production path, in one process on loopback: a client
// opens HBONE (mTLS, HTTP/2 CONNECT) to the waypoint with :authority VIP:80,
// speaks HTTP/1.1 in the tunnel; the waypoint authorizes on the client's
// SPIFFE identity, routes, and opens its own HBONE to the endpoint's
// "ztunnel", which checks the waypoint's identity and connects the backend.
import { once } from "node:events";
import http from "node:http";
import type net from "node:net";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { spiffe } from "./fixtures-ztunnel.js";
import { cluster, cname, route, service } from "./waypoint-harness.js";
import { BACKEND, CLIENT, hboneWaypointMesh, POD_IP, WAYPOINT } from "./waypoint-hbone-mesh.js";

const INTRUDER = spiffe("other", "intruder");

t.test("client → HBONE → waypoint (L7 authz on peer identity) → HBONE → backend", async (t) => {
  // the backend and its node's "ztunnel": HBONE in, plain TCP to the app
  const app = http.createServer((req, res) =>
    res.end(JSON.stringify({ url: req.url, host: req.headers.host })),
  );
  const m = await hboneWaypointMesh(t, app, (appPort) =>
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
  );
  const get = async (identity: string, path: string) => {
    const tunnel = await m.tunnel(identity);
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
  t.same(m.peers, [WAYPOINT], "the backend's ztunnel sees the waypoint's identity");
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

// The waypoint's Istio request metrics name both ends: the caller's workload
// (found by its address among the mesh endpoints the waypoint holds, its
// namespace else from its SPIFFE identity) and the endpoint the load balancer
// picked (its workload from the config), through a real waypoint on loopback.
import { once } from "node:events";
import http from "node:http";
import type net from "node:net";
import t from "tap";
import { parsePeerBaggage } from "../../core/hbone/baggage.js";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import { registry } from "../../core/telemetry/metrics.js";
import { connMetaOf, HttpProxy } from "../../waypoint/proxy.js";
import { WaypointState } from "../../waypoint/state.js";
import { AccessLog, namespaceOfIdentity } from "../../waypoint/telemetry.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";
import { cluster, cname, httpBackend, NS, route, service, startWaypoint } from "./waypoint-harness.js";

// The caller connects from its own loopback address, listed as an endpoint of another service.
const CALLER_IP = "127.0.0.2";

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, localAddress: CALLER_IP, path: "/", headers: { host: "web" }, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

t.test("request metrics carry source and destination workloads", async (t) => {
  const be = await httpBackend(t, "reviews-v1");
  const web = service({
    routes: [route("r", { backends: [{ cluster: cname("web"), weight: 1 }] })],
    clusters: [
      cluster("web", [be.port], {
        endpoints: [
          {
            ip: "127.0.0.1",
            port: be.port,
            workload: "reviews-v1",
            namespace: NS,
            identity: `spiffe://cluster.local/ns/${NS}/sa/reviews`,
          },
        ],
      }),
    ],
  });
  const caller = service({
    key: "shop/sleep.shop.svc.cluster.local",
    name: "sleep",
    namespace: "shop",
    hostname: "sleep.shop.svc.cluster.local",
    vips: ["10.96.0.99"],
    routes: [],
    clusters: [
      {
        name: "shop/sleep.shop.svc.cluster.local:80",
        service: "shop/sleep.shop.svc.cluster.local",
        port: 80,
        protocol: "http",
        endpoints: [{ ip: CALLER_IP, port: 8080, workload: "sleep", namespace: "shop" }],
      },
    ],
  });
  const { port } = await startWaypoint(t, [web, caller]);
  for (let i = 0; i < 3; i++) t.equal(await get(port), 200);

  const m = await registry.getSingleMetric("istio_requests_total")!.get();
  const row = m.values.find(
    (v) => v.labels.destination_service === `web.${NS}.svc.cluster.local` && v.labels.response_code === "200",
  );
  t.ok(row, "a series for the request");
  t.match(row!.labels, {
    reporter: "waypoint",
    source_workload: "sleep",
    source_workload_namespace: "shop",
    destination_workload: "reviews-v1",
    destination_workload_namespace: NS,
    destination_principal: `spiffe://cluster.local/ns/${NS}/sa/reviews`,
    request_protocol: "http",
  });
  t.equal(row!.value, 3, "one series, counted once per request");
  for (const name of ["istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"]) {
    const h = await registry.getSingleMetric(name)!.get();
    const count = h.values.find(
      (v) =>
        (v as { metricName?: string }).metricName === `${name}_count` &&
        v.labels.source_workload === "sleep" &&
        v.labels.destination_workload === "reviews-v1",
    );
    t.equal(count?.value, 3, `${name} carries the workloads`);
  }
});

t.test("labels are resolved once per connection and per endpoint", async (t) => {
  const state = new WaypointState();
  t.teardown(() => state.close());
  const proxy = new HttpProxy(state, { accessLog: new AccessLog(0) });
  const conn = {
    dst: { ip: "10.96.0.10", port: 80 },
    sourceIp: "10.244.9.9",
    peerIdentity: "spiffe://cluster.local/ns/shop/sa/sleep",
  };
  const src = proxy.sourceLabels(conn);
  t.same(
    src,
    { principal: conn.peerIdentity, namespace: "shop" },
    "namespace from identity when the address is unknown",
  );
  t.equal(proxy.sourceLabels(conn), src, "the same object for the same connection (cached)");
  // A new connection per request (Connection: close) from the same caller: the same labels object.
  t.equal(proxy.sourceLabels({ ...conn }), src, "the same object for a new connection of the same caller");
  const other = proxy.sourceLabels({ ...conn, peerIdentity: "spiffe://cluster.local/ns/shop/sa/other" });
  t.not(other, src, "another caller: its own labels");
  state.upsert(service({ routes: [], clusters: [] }));
  const after = proxy.sourceLabels({ ...conn });
  t.not(after, src, "after a config change, resolved again (its address may now be known)");
  t.same(after, src);
  t.equal(namespaceOfIdentity("spiffe://td/ns/a-b/sa/x"), "a-b");
  t.equal(namespaceOfIdentity(undefined), undefined);
});

t.test("a caller unknown by address is named by its HBONE CONNECT baggage", async (t) => {
  const ip = loopbackNet();
  const WAYPOINT_IP = ip(2);
  const CLIENT = spiffe("shop", "client");
  const WAYPOINT = spiffe(NS, "waypoint");
  const pki = await makePki();
  const certs = pki.source();
  const be = await httpBackend(t, "ratings-v1");
  const { wp } = await startWaypoint(t, [
    service({
      key: `${NS}/ratings.${NS}.svc.cluster.local`,
      name: "ratings",
      hostname: `ratings.${NS}.svc.cluster.local`,
      vips: ["10.96.0.77"],
      routes: [route("r", { backends: [{ cluster: cname("ratings"), weight: 1 }] })],
      clusters: [cluster("ratings", [be.port])],
    }),
  ]);
  // The same wiring as the waypoint app's HBONE listener.
  const server = new HboneServer({
    handler: (stream, info) => {
      stream.respond({ ":status": 200 });
      wp.serveStream(stream, connMetaOf(info));
    },
  });
  const l = await server.listen({ host: WAYPOINT_IP, port: 0 }, { cert: () => certs.get(WAYPOINT) });
  t.teardown(() => server.close());
  const client = new HboneClient({ certs, connectTimeoutMs: 3000 });
  t.teardown(() => client.destroy());
  const get = async (baggage: string) => {
    const tunnel = await client.connect({
      srcIdentity: CLIENT,
      srcIp: "",
      dstIdentity: WAYPOINT,
      dstIp: WAYPOINT_IP,
      dstPort: l.address().port,
      authority: "10.96.0.77:80",
      baggage,
    });
    const req = http.request({
      path: "/",
      headers: { host: "ratings" },
      createConnection: () => tunnel as unknown as net.Socket,
    });
    req.end();
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    res.resume();
    await once(res, "end");
    tunnel.destroy();
    return res.statusCode;
  };
  t.equal(
    await get("k8s.namespace.name=shop,k8s.deployment.name=client,service.name=client,service.version=v1"),
    200,
  );
  t.equal(await get("k8s.namespace.name=shop;bad,k8s.deployment.name=client"), 200);
  const m = await registry.getSingleMetric("istio_requests_total")!.get();
  const rows = m.values.filter((v) => v.labels.destination_service === `ratings.${NS}.svc.cluster.local`);
  t.match(
    rows.find((v) => v.labels.source_workload === "client"),
    { labels: { source_workload_namespace: "shop", source_principal: CLIENT }, value: 1 },
    "the well-formed baggage names the source workload",
  );
  t.match(
    rows.find((v) => v.labels.source_workload !== "client"),
    { labels: { source_workload: "unknown", source_workload_namespace: "shop" }, value: 1 },
    "malformed baggage is ignored: namespace from the identity, workload unknown",
  );
});

t.test("baggage parsing is strict; the address among the endpoints wins over baggage", async (t) => {
  const good = "k8s.namespace.name=shop,k8s.deployment.name=client";
  t.same(parsePeerBaggage(good), { namespace: "shop", workload: "client" });
  for (const bad of [
    undefined,
    "",
    "k8s.namespace.name=shop",
    "k8s.deployment.name=client",
    `${good},x`,
    `${good},a=b;prop=1`,
    `${good},a=%20`,
    `k8s.namespace.name=shop,k8s.widget.name=client`,
    `${good},pad=${"x".repeat(1100)}`,
  ])
    t.equal(parsePeerBaggage(bad), undefined, `rejects ${String(bad).slice(0, 60)}`);

  const state = new WaypointState();
  t.teardown(() => state.close());
  const proxy = new HttpProxy(state, { accessLog: new AccessLog(0) });
  t.same(
    proxy.sourceLabels({ dst: { ip: "10.96.0.10", port: 80 }, sourceIp: "10.244.9.9", peerBaggage: good }),
    { workload: "client", namespace: "shop" },
  );
  t.same(
    proxy.sourceLabels({ dst: { ip: "10.96.0.10", port: 80 }, sourceIp: "10.244.9.9", peerBaggage: "junk" }),
    {},
    "malformed: nothing",
  );
  t.same(
    proxy.sourceLabels({
      dst: { ip: "10.96.0.10", port: 80 },
      peerIdentity: "spiffe://cluster.local/ns/shop/sa/client",
      sourceWorkload: "own",
      peerBaggage: good,
    }),
    { principal: "spiffe://cluster.local/ns/shop/sa/client", workload: "own", namespace: "shop" },
    "the connection's own labels win",
  );
});

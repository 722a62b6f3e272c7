// The dashboard's aggregation: Prometheus text → edges (one reporter per
// edge, no double counting), rates from two scrapes, p99 from buckets, mTLS
// and waypoint marks; and the server scraping a real /metrics on loopback.
import http from "node:http";
import type { AddressInfo } from "node:net";
import t from "tap";
import type { ControllerView } from "../../controller/app.js";
import {
  buildGraph,
  certExpiries,
  edgeTotals,
  parsePromText,
  quantile,
} from "../../controller/dashboard/graph.js";
import { DashboardServer, proxyMetricsUrl } from "../../controller/dashboard/server.js";
import type { MeshService, MeshWorkload } from "../../core/model/types.js";

const L = (o: Record<string, string>) =>
  Object.entries({
    source_workload: "client",
    source_workload_namespace: "demo",
    source_principal: "spiffe://cluster.local/ns/demo/sa/client",
    destination_service: "web.demo.svc.cluster.local",
    destination_workload: "web",
    destination_workload_namespace: "demo",
    destination_principal: "spiffe://cluster.local/ns/demo/sa/web",
    connection_security_policy: "mutual_tls",
    ...o,
  })
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");

function metricsText(ok: number, denied: number, bytes: number): string {
  return [
    "# HELP istio_requests_total Requests",
    "# TYPE istio_requests_total counter",
    `istio_requests_total{${L({ reporter: "waypoint", response_code: "200", request_protocol: "http" })}} ${ok}`,
    `istio_requests_total{${L({ reporter: "waypoint", response_code: "403", request_protocol: "http" })}} ${denied}`,
    `istio_request_duration_milliseconds_bucket{${L({ reporter: "waypoint", response_code: "200", request_protocol: "http", le: "5" })}} ${ok}`,
    `istio_request_duration_milliseconds_bucket{${L({ reporter: "waypoint", response_code: "200", request_protocol: "http", le: "+Inf" })}} ${ok}`,
    // the ztunnels saw the same traffic as TCP: counted for bytes only
    `istio_tcp_sent_bytes_total{${L({ reporter: "source" })}} ${bytes}`,
    `istio_tcp_sent_bytes_total{${L({ reporter: "destination" })}} ${bytes}`,
    `istio_tcp_connections_opened_total{${L({ reporter: "destination" })}} 3`,
    // an L4-only edge, plaintext
    `istio_tcp_connections_opened_total{${L({ reporter: "destination", source_workload: "batch", destination_service: "db.data.svc.cluster.local", destination_workload: "db", destination_workload_namespace: "data", connection_security_policy: "none" })}} 10`,
    'ambit_other_metric{a="b"} 1',
  ].join("\n");
}

const workload = (ns: string, name: string, tunnel: "hbone" | "none" = "hbone"): MeshWorkload => ({
  uid: `c//v1/Pod/${ns}/${name}-0`,
  name: `${name}-0`,
  namespace: ns,
  ips: ["10.0.0.1"],
  node: "node1",
  serviceAccount: name,
  trustDomain: "cluster.local",
  tunnel,
  services:
    name === "web" ? { "demo/web.demo.svc.cluster.local": [{ servicePort: 80, targetPort: 8080 }] } : {},
  healthy: true,
  canonicalName: name,
  canonicalRevision: "latest",
  workloadName: name,
  workloadType: "deployment",
  clusterId: "c",
  network: "",
  authorizationPolicies: [],
});
const svc = (ns: string, name: string): MeshService => ({
  key: `${ns}/${name}.${ns}.svc.cluster.local`,
  name,
  namespace: ns,
  hostname: `${name}.${ns}.svc.cluster.local`,
  vips: ["10.96.0.10"],
  ports: [],
});

t.test("parsePromText: labels with escapes, comments skipped, filter", async (t) => {
  const s = parsePromText('# c\nm{a="x\\"y",b="z"} 3\nn 4\nbad line\n', (n) => n === "m");
  t.same(s, [{ name: "m", labels: { a: 'x"y', b: "z" }, value: 3 }]);
});

t.test("quantile interpolates within buckets", async (t) => {
  t.equal(
    quantile(
      0.5,
      new Map([
        [10, 50],
        [20, 100],
        [Number.POSITIVE_INFINITY, 100],
      ]),
    ),
    10,
  );
  t.equal(
    quantile(
      0.99,
      new Map([
        [10, 0],
        [20, 100],
        [Number.POSITIVE_INFINITY, 100],
      ]),
    ),
    19.9,
  );
  t.equal(quantile(0.99, new Map()), undefined);
});

t.test("edges: one reporter per edge, errors, mTLS, waypoint, rates between scrapes", async (t) => {
  const before = edgeTotals(parsePromText(metricsText(100, 0, 1000)));
  const now = edgeTotals(parsePromText(metricsText(120, 5, 3000)));
  const key = "demo/client->demo/svc:web";
  t.equal(now.get(key)?.requests, 125, "requests from the waypoint only (not summed with ztunnel)");
  t.equal(now.get(key)?.bytes, 3000, "bytes from one ztunnel reporter, not both");
  const model = {
    workloads: [workload("demo", "client"), workload("demo", "web")],
    services: [svc("demo", "web")],
  };
  const g = buildGraph(model, now, before, 2);
  const e = g.edges.find((x) => x.id === key)!;
  t.equal(e.rps, 12.5, "25 requests in 2 s");
  t.equal(e.errorRate, 0.2, "5 of 25 denied");
  t.equal(e.bps, 1000);
  t.ok(e.mtls, "mTLS edge");
  t.ok(e.waypoint, "waypoint in the path");
  t.equal(e.protocol, "http");
  t.ok(e.p99Ms !== undefined && e.p99Ms <= 5, `p99 within the 5 ms bucket (${e.p99Ms})`);
  const l4 = g.edges.find((x) => x.id === "demo/batch->data/svc:db")!;
  t.equal(l4.protocol, "tcp");
  t.notOk(l4.mtls);
  t.equal(l4.rps, 0, "no change since the last scrape");
  // nodes: model plus parties only the metrics name, grouped by namespace
  t.same(
    g.nodes.map((n) => [n.id, n.kind, n.namespace]),
    [
      ["data/svc:db", "service", "data"],
      ["demo/batch", "unknown", "demo"],
      ["demo/client", "workload", "demo"],
      ["demo/svc:web", "service", "demo"],
      ["demo/web", "workload", "demo"],
    ],
  );
  t.same(
    g.links,
    [{ source: "demo/svc:web", target: "demo/web" }],
    "the Service links to the workload backing it",
  );
  const first = buildGraph(model, now, undefined, 0);
  t.equal(first.edges.find((x) => x.id === key)?.rps, 0, "no rate before a second scrape");
});

t.test("L4 denials by the destination's ztunnel are errors on their edge", async (t) => {
  const text = (opened: number, denied: number) =>
    [
      `istio_tcp_connections_opened_total{${L({ reporter: "source", destination_workload: "unknown" })}} ${opened}`,
      `istio_tcp_connections_opened_total{${L({ reporter: "destination" })}} ${opened}`,
      `ambit_tcp_connections_denied_total{${L({ reporter: "destination", source_workload: "rogue", reason: "DENY_POLICY" })}} ${denied}`,
    ].join("\n");
  const before = edgeTotals(parsePromText(text(10, 0)));
  const now = edgeTotals(parsePromText(text(14, 4)));
  const model = { workloads: [workload("demo", "web")], services: [svc("demo", "web")] };
  const g = buildGraph(model, now, before, 2);
  const ok = g.edges.find((x) => x.id === "demo/client->demo/svc:web")!;
  t.equal(ok.rps, 2, "4 connections in 2 s, counted once (destination reporter)");
  t.equal(ok.errorRate, 0);
  const denied = g.edges.find((x) => x.id === "demo/rogue->demo/svc:web")!;
  t.equal(denied.protocol, "tcp");
  t.equal(denied.rps, 2, "denied attempts are part of the rate");
  t.equal(denied.errorRate, 1, "every attempt denied");
  t.equal(denied.totalDenied, 4);
  t.equal(denied.totalErrors, 4);
  t.ok(denied.mtls, "denied over mTLS (the source was identified)");
  const fresh = buildGraph(model, now, new Map(), 2).edges.find((x) => x.id === denied.id)!;
  t.equal(fresh.rps, 0, "an edge the base lacks has no rate yet (its counters' start is unknown)");
  t.equal(fresh.errorRate, 1, "... but its errors show at once");
});

t.test("waypoint: callers resolved from identity, waypoint node, its own hops not repeated", async (t) => {
  const P = "spiffe://cluster.local/ns/shop/sa/default";
  const W = "spiffe://cluster.local/ns/shop/sa/waypoint";
  const shop = (o: Record<string, string>) =>
    L({
      source_workload_namespace: "shop",
      destination_service: "reviews.shop.svc.cluster.local",
      destination_workload_namespace: "shop",
      destination_workload: "reviews",
      ...o,
    });
  const text = [
    // the client's ztunnel: workload and identity
    `istio_tcp_connections_opened_total{${shop({ reporter: "source", source_workload: "client", source_principal: P })}} 5`,
    // the waypoint: identity only
    `istio_requests_total{${shop({ reporter: "waypoint", source_workload: "unknown", source_workload_namespace: "unknown", source_principal: P, response_code: "200", request_protocol: "http" })}} 50`,
    // an identity no ztunnel saw calling reviews
    `istio_requests_total{${shop({ reporter: "waypoint", source_workload: "unknown", source_principal: "spiffe://cluster.local/ns/shop/sa/batch", response_code: "200", request_protocol: "http" })}} 7`,
    // the waypoint's own hop to the endpoint
    `istio_tcp_connections_opened_total{${shop({ reporter: "destination", source_workload: "waypoint", source_principal: W })}} 1`,
  ].join("\n");
  const totals = edgeTotals(parsePromText(text));
  const e = totals.get("shop/client->shop/svc:reviews")!;
  t.equal(e.requests, 50, "the waypoint's requests are the client's");
  t.ok(e.waypoint, "through the waypoint");
  t.equal(e.connections, 5, "its connections from the client's ztunnel");
  t.ok(totals.has("shop/sa:batch->shop/svc:reviews"), "an identity alone gets a node of its own");
  const wp = workload("shop", "waypoint");
  wp.services = { "shop/waypoint.shop.svc.cluster.local": [{ servicePort: 15008, targetPort: 15008 }] };
  const reviews = { ...svc("shop", "reviews"), waypoint: { address: "10.96.0.99", hboneMtlsPort: 15008 } };
  const g = buildGraph(
    {
      workloads: [workload("shop", "client"), wp],
      services: [reviews, { ...svc("shop", "waypoint"), vips: ["10.96.0.99"] }],
    },
    totals,
    undefined,
    0,
  );
  t.equal(g.nodes.find((n) => n.id === "shop/waypoint")?.kind, "waypoint");
  t.notOk(
    g.edges.some((x) => x.source === "shop/waypoint"),
    "the waypoint's own hops are not repeated as edges",
  );
  t.ok(g.edges.some((x) => x.id === "shop/client->shop/svc:reviews" && x.waypoint && x.protocol === "http"));
  const l4only = edgeTotals(parsePromText(text.split("\n")[0]!));
  const g2 = buildGraph({ workloads: [], services: [] }, totals, l4only, 2);
  t.equal(
    g2.edges.find((x) => x.id === "shop/client->shop/svc:reviews")?.rps,
    0,
    "a base from another reporter is no base: no burst when the waypoint is first scraped",
  );
});

t.test("certificate expiry by identity: the soonest across proxies", async (t) => {
  const m = certExpiries(
    parsePromText(
      [
        'ambit_cert_expiry_seconds{identity="spiffe://cluster.local/ns/demo/sa/web"} 86000',
        'ambit_cert_expiry_seconds{identity="spiffe://cluster.local/ns/demo/sa/web"} 43000',
        'ambit_cert_expiry_seconds{identity="spiffe://cluster.local/ns/demo/sa/client"} 100',
        "ambit_cert_expiry_seconds 5",
      ].join("\n"),
    ),
  );
  t.same(
    [...m],
    [
      ["spiffe://cluster.local/ns/demo/sa/web", 43000],
      ["spiffe://cluster.local/ns/demo/sa/client", 100],
    ],
  );
});

t.test("proxyMetricsUrl from gRPC peers", async (t) => {
  t.equal(proxyMetricsUrl("ipv4:10.213.0.5:40000", 15020), "http://10.213.0.5:15020/metrics");
  t.equal(proxyMetricsUrl("ipv6:[fd00::5]:40000", 15020), "http://[fd00::5]:15020/metrics");
  t.equal(proxyMetricsUrl("unix:/x", 15020), undefined);
});

t.test("server: scrapes a real /metrics, serves graph, workload, health, SSE; read-only", async (t) => {
  let text = metricsText(100, 0, 1000);
  const expiry = '\nambit_cert_expiry_seconds{identity="spiffe://cluster.local/ns/demo/sa/web"} 7200\n';
  const target = http.createServer((_q, r) => r.writeHead(200).end(text + expiry));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise((r) => target.close(r)));
  const view: ControllerView = {
    workloads: [workload("demo", "client"), workload("demo", "web")],
    services: [svc("demo", "web")],
    policies: [
      { name: "deny-all", namespace: "demo", scope: "namespace", action: "deny", rules: [], dryRun: false },
    ],
    errors: [],
    warnings: [],
    statuses: [],
    translatedAt: new Date(),
  };
  const d = new DashboardServer(
    { current: () => view, connections: () => [] },
    {
      host: "127.0.0.1",
      port: 0,
      targets: [
        `http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics`,
        "http://127.0.0.1:1/metrics",
      ],
      proxyMetricsPort: 15020,
      scrapeIntervalMs: 60_000,
      rateWindowMs: 30_000,
    },
  );
  const port = await d.start();
  t.teardown(() => d.close());
  const base = `http://127.0.0.1:${port}`;
  text = metricsText(110, 2, 2000);
  // an SSE client sees the next graph
  const sse = await new Promise<http.IncomingMessage>((r) => http.get(`${base}/api/events`, r));
  const events: string[] = [];
  const second = new Promise<void>((resolve) =>
    sse.on("data", (c: Buffer) => {
      events.push(c.toString());
      if (events.join("").split("event: graph").length > 2) resolve();
    }),
  );
  t.teardown(() => sse.destroy());
  await d.scrape();
  await second;
  const g = (await (await fetch(`${base}/api/graph`)).json()) as {
    edges: { id: string; totalErrors: number }[];
  };
  t.equal(g.edges.find((e) => e.id === "demo/client->demo/svc:web")?.totalErrors, 2);
  const w = (await (await fetch(`${base}/api/workload?ns=demo&name=web`)).json()) as Record<string, unknown>;
  t.match(w, {
    pods: [
      {
        node: "node1",
        identity: "spiffe://cluster.local/ns/demo/sa/web",
        enrolled: true,
        certificate: { secondsLeft: Number },
      },
    ],
    services: [{ hostname: "web.demo.svc.cluster.local" }],
    policies: [{ name: "demo/deny-all", action: "deny" }],
  });
  const left = (w as { pods: { certificate: { secondsLeft: number } }[] }).pods[0]!.certificate.secondsLeft;
  t.ok(left > 7100 && left <= 7200, `certificate expiry from the proxy's gauge (${left} s left)`);
  t.equal((await fetch(`${base}/api/workload?ns=demo&name=nope`)).status, 404);
  const h = (await (await fetch(`${base}/api/health`)).json()) as { targets: { url: string; ok: boolean }[] };
  t.same(
    h.targets.map((x) => [x.url.includes(":1/"), x.ok]),
    [
      [true, false],
      [false, true],
    ],
    "a dead target is reported, not fatal",
  );
  t.equal((await fetch(`${base}/api/graph`, { method: "POST" })).status, 405, "read-only");
  const page = await (await fetch(`${base}/`)).text();
  t.match(page, /cytoscape\.min\.js/);
  t.ok((await (await fetch(`${base}/cytoscape.min.js`)).text()).length > 100_000, "cytoscape served");
});

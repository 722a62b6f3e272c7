import t from "tap";
import {
  closeClientAgent,
  cluster,
  cname,
  httpBackend,
  request,
  route,
  service,
  startWaypoint,
} from "./waypoint-harness.js";

t.teardown(closeClientAgent);

t.test("routes by path, header, query and method with precedence; 404 when nothing matches", async (t) => {
  const a = await httpBackend(t, "a");
  const b = await httpBackend(t, "b");
  const c = await httpBackend(t, "c");
  const svc = service({
    clusters: [cluster("a", [a.port]), cluster("b", [b.port]), cluster("c", [c.port])],
    routes: [
      route("exact", {
        match: { path: { type: "Exact", value: "/exact" } },
        backends: [{ cluster: cname("c"), weight: 1 }],
      }),
      route("regex", {
        match: { path: { type: "RegularExpression", value: "/r/[0-9]+" } },
        backends: [{ cluster: cname("c"), weight: 1 }],
      }),
      route("hdr", {
        match: {
          path: { type: "PathPrefix", value: "/api" },
          headers: [{ type: "Exact", name: "X-Canary", value: "yes" }],
        },
        backends: [{ cluster: cname("b"), weight: 1 }],
      }),
      route("query", {
        match: {
          path: { type: "PathPrefix", value: "/api" },
          queryParams: [{ type: "Exact", name: "v", value: "2" }],
        },
        backends: [{ cluster: cname("b"), weight: 1 }],
      }),
      route("post", {
        match: { path: { type: "PathPrefix", value: "/api" }, method: "POST" },
        backends: [{ cluster: cname("c"), weight: 1 }],
      }),
      route("prefix", {
        match: { path: { type: "PathPrefix", value: "/api/" } },
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const who = async (path: string, o: { method?: string; headers?: Record<string, string> } = {}) => {
    const r = await request(port, { path, ...o });
    return r.status === 200 ? String(r.json().backend) : r.status;
  };
  t.equal(await who("/exact"), "c");
  t.equal(await who("/exact/more"), 404);
  t.equal(await who("/r/123"), "c");
  t.equal(await who("/r/abc"), 404);
  t.equal(await who("/api/x"), "a");
  t.equal(await who("/api"), "a", "PathPrefix /api/ matches /api");
  t.equal(await who("/apix"), 404, "prefix matches whole segments");
  t.equal(await who("/api/x", { headers: { "x-canary": "yes" } }), "b");
  t.equal(await who("/api/x?v=2"), "b");
  t.equal(await who("/api/x?v=3"), "a");
  t.equal(await who("/api/x", { method: "POST" }), "c");
  t.equal(await who("/other"), 404);
  t.equal(a.seen[0]?.url, "/api/x");
});

t.test("90/10 weights over 1,000 requests land within statistical bounds", async (t) => {
  const stable = await httpBackend(t, "stable");
  const canary = await httpBackend(t, "canary");
  const svc = service({
    clusters: [cluster("stable", [stable.port]), cluster("canary", [canary.port])],
    routes: [
      route("split", {
        backends: [
          { cluster: cname("stable"), weight: 90 },
          { cluster: cname("canary"), weight: 10 },
        ],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const N = 1000;
  for (let i = 0; i < N; i += 50) await Promise.all(Array.from({ length: 50 }, () => request(port)));
  const k = canary.seen.length;
  t.equal(stable.seen.length + k, N);
  // binomial(1000, 0.1): mean 100, sd ≈ 9.5; ±5 sd
  t.ok(k > 100 - 48 && k < 100 + 48, `canary got ${k} of ${N}`);
});

t.test("request and response header modifiers, URL rewrite, redirect", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [
      route("redirect", {
        match: { path: { type: "PathPrefix", value: "/old" } },
        filters: [
          {
            type: "RequestRedirect",
            statusCode: 301,
            path: { type: "ReplacePrefixMatch", value: "/new" },
            hostname: "example.com",
          },
        ],
      }),
      route("rewrite", {
        match: { path: { type: "PathPrefix", value: "/v1" } },
        filters: [
          { type: "URLRewrite", hostname: "internal", path: { type: "ReplacePrefixMatch", value: "/api" } },
          {
            type: "RequestHeaderModifier",
            modifier: {
              set: [{ name: "X-Set", value: "s" }],
              add: [{ name: "x-add", value: "a" }],
              remove: ["x-drop"],
            },
          },
          {
            type: "ResponseHeaderModifier",
            modifier: { set: [{ name: "x-resp", value: "r" }], remove: ["x-backend"] },
          },
        ],
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const r = await request(port, { path: "/v1/items?q=1", headers: { "x-drop": "1", "x-add": "z" } });
  t.equal(r.status, 200);
  const seen = a.seen[0]!;
  t.equal(seen.url, "/api/items?q=1");
  t.equal(seen.headers.host, "internal");
  t.equal(seen.headers["x-set"], "s");
  t.equal(seen.headers["x-add"], "z, a");
  t.notOk(seen.headers["x-drop"]);
  t.match(seen.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  t.equal(r.headers["x-resp"], "r");
  t.notOk(r.headers["x-backend"]);
  const red = await request(port, { path: "/old/page?x=1" });
  t.equal(red.status, 301);
  t.equal(red.headers.location, "http://example.com/new/page?x=1");
});

t.test("traceparent from the caller keeps its trace id with a new span id", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("all", { backends: [{ cluster: cname("a"), weight: 1 }] })],
  });
  const { port } = await startWaypoint(t, [svc]);
  const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  await request(port, { headers: { traceparent: tp } });
  const got = String(a.seen[0]!.headers.traceparent);
  t.match(got, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  t.not(got, tp);
});

t.test("access log: one line per sampled request with the traceparent sent upstream", async (t) => {
  const { Waypoint } = await import("../../waypoint/waypoint.js");
  const a = await httpBackend(t, "a");
  const lines: Record<string, unknown>[] = [];
  const wp = new Waypoint({ accessLogSample: 1, accessLogSink: (l) => lines.push(l) });
  await wp.start();
  t.teardown(() => wp.close());
  wp.applyServices([
    service({
      clusters: [cluster("a", [a.port])],
      routes: [route("all", { backends: [{ cluster: cname("a"), weight: 1 }] })],
    }),
  ]);
  const { port } = await wp.listenTcp({ port: 0, dst: { ip: "10.96.0.10", port: 80 } });
  await request(port, { path: "/logged?x=1" });
  t.equal(lines.length, 1);
  t.match(lines[0], {
    method: "GET",
    path: "/logged?x=1",
    code: 200,
    route: "all",
    attempts: 1,
    traceparent: a.seen[0]!.headers.traceparent,
  });
  t.match(String(lines[0]!.upstream), /^127\.0\.0\.1:\d+$/);
});

import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
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

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  let sum = 0;
  for (const v of m?.values ?? [])
    if (Object.entries(labels).every(([k, x]) => v.labels[k] === x)) sum += v.value;
  return sum;
}

t.test("a backend failing 1 in 3 succeeds with retries (and fails without)", async (t) => {
  const flaky = await httpBackend(t, "flaky", (_req, res, _b, n) => {
    res.writeHead(n % 3 === 1 ? 503 : 200);
    res.end(n % 3 === 1 ? "fail" : "ok");
  });
  const retrying = service({
    clusters: [cluster("flaky", [flaky.port])],
    routes: [
      route("retry", {
        match: { path: { type: "PathPrefix", value: "/r" } },
        backends: [{ cluster: cname("flaky"), weight: 1 }],
        retry: { attempts: 2, codes: [503], grpcCodes: [], backoffMs: 1 },
      }),
      route("noretry", { backends: [{ cluster: cname("flaky"), weight: 1 }] }),
    ],
  });
  const { port } = await startWaypoint(t, [retrying]);
  const before = await metricValue("ambit_waypoint_retries_total");
  const codes: number[] = [];
  for (let i = 0; i < 30; i++)
    codes.push((await request(port, { path: "/r", method: "POST", body: `payload-${i}` })).status);
  t.same(new Set(codes), new Set([200]), "every request succeeds");
  const failures = flaky.seen.length - 30;
  t.ok(failures >= 10, `the backend failed ${failures} times`);
  t.equal((await metricValue("ambit_waypoint_retries_total")) - before, failures, "one retry per failure");
  t.ok(
    flaky.seen.every((s) => s.body.startsWith("payload-")),
    "retries resend the body",
  );
  const plain: number[] = [];
  for (let i = 0; i < 30; i++) plain.push((await request(port, { path: "/x" })).status);
  t.ok(Math.abs(plain.filter((c) => c === 503).length - 10) <= 1, "without retries a third fail");
});

t.test("connect failures are retried on another endpoint", async (t) => {
  const ok = await httpBackend(t, "ok");
  const svc = service({
    clusters: [cluster("mixed", [1, ok.port])], // port 1: connection refused
    routes: [
      route("r", {
        backends: [{ cluster: cname("mixed"), weight: 1 }],
        retry: { attempts: 1, codes: [], grpcCodes: [], backoffMs: 1 },
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  for (let i = 0; i < 6; i++) t.equal((await request(port)).status, 200);
});

t.test("backendRequest timeout answers 504; a retry with a fast attempt succeeds", async (t) => {
  const slowFirst = await httpBackend(t, "slow", (_req, res, _b, n) => {
    if (n === 1) setTimeout(() => res.end("late"), 2000).unref();
    else res.end("fast");
  });
  const svc = service({
    clusters: [cluster("slow", [slowFirst.port])],
    routes: [
      route("retry", {
        match: { path: { type: "Exact", value: "/retry" } },
        backends: [{ cluster: cname("slow"), weight: 1 }],
        timeouts: { backendRequestMs: 200, requestMs: 1500 },
        retry: { attempts: 1, codes: [504], grpcCodes: [], backoffMs: 1 },
      }),
      route("once", {
        backends: [{ cluster: cname("slow"), weight: 1 }],
        timeouts: { requestMs: 200 },
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const r = await request(port, { path: "/retry" });
  t.equal(r.status, 200);
  t.equal(r.body, "fast");
  const slowAgain = await httpBackend(t, "never", (_req, res) =>
    setTimeout(() => res.end("late"), 2000).unref(),
  );
  const svc2 = service({
    clusters: [cluster("never", [slowAgain.port])],
    routes: [
      route("once", { backends: [{ cluster: cname("never"), weight: 1 }], timeouts: { requestMs: 200 } }),
    ],
  });
  const w2 = await startWaypoint(t, [svc2]);
  const t0 = Date.now();
  const r2 = await request(w2.port);
  t.equal(r2.status, 504);
  t.ok(Date.now() - t0 < 1500, "answered at the timeout, not the backend's pace");
});

t.test("fault injection: 100% abort returns the configured status; delay delays", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [
      route("abort", {
        match: { path: { type: "PathPrefix", value: "/abort" } },
        filters: [{ type: "Fault", fault: { abort: { httpStatus: 418, percent: 100 } } }],
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
      route("delay", {
        match: { path: { type: "PathPrefix", value: "/delay" } },
        filters: [{ type: "Fault", fault: { delay: { fixedDelayMs: 300, percent: 100 } } }],
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
      route("half", {
        filters: [{ type: "Fault", fault: { abort: { httpStatus: 500, percent: 50 } } }],
        backends: [{ cluster: cname("a"), weight: 1 }],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  for (let i = 0; i < 5; i++) t.equal((await request(port, { path: "/abort" })).status, 418);
  t.equal(a.seen.length, 0, "aborted requests never reach the backend");
  const t0 = Date.now();
  t.equal((await request(port, { path: "/delay" })).status, 200);
  t.ok(Date.now() - t0 >= 290, "delayed");
  const codes = await Promise.all(
    Array.from({ length: 400 }, () => request(port, { path: "/half" }).then((r) => r.status)),
  );
  const aborted = codes.filter((c) => c === 500).length;
  t.ok(aborted > 140 && aborted < 260, `50% abort: ${aborted} of 400`);
});

t.test("connection pool limit answers 503 on overflow", async (t) => {
  const held: (() => void)[] = [];
  const slow = await httpBackend(t, "slow", (_req, res) => held.push(() => res.end("done")));
  const svc = service({
    clusters: [
      cluster("slow", [slow.port], {
        policy: { connectionPool: { maxConnections: 2, maxPendingRequests: 1 } },
      }),
    ],
    routes: [route("r", { backends: [{ cluster: cname("slow"), weight: 1 }] })],
  });
  const { port } = await startWaypoint(t, [svc]);
  const inflight = [request(port), request(port), request(port)];
  while (slow.seen.length < 2) await slow.next();
  const over = await request(port);
  t.equal(over.status, 503);
  t.equal(over.headers["x-ambit-overloaded"], "true");
  for (const f of held.splice(0)) f();
  while (held.length < 1) await slow.next();
  for (const f of held.splice(0)) f();
  const rs = await Promise.all(inflight);
  t.same(
    rs.map((r) => r.status),
    [200, 200, 200],
  );
});

t.test("outlier detection ejects an endpoint after consecutive 5xx", async (t) => {
  const bad = await httpBackend(t, "bad", (_req, res) => {
    res.writeHead(500);
    res.end();
  });
  const good = await httpBackend(t, "good");
  const svc = service({
    clusters: [
      cluster("pool", [bad.port, good.port], {
        policy: {
          outlierDetection: { consecutive5xxErrors: 3, baseEjectionTimeMs: 60_000, maxEjectionPercent: 50 },
        },
      }),
    ],
    routes: [route("r", { backends: [{ cluster: cname("pool"), weight: 1 }] })],
  });
  const { port } = await startWaypoint(t, [svc]);
  const before = await metricValue("ambit_waypoint_ejections_total");
  for (let i = 0; i < 10; i++) await request(port);
  t.equal(bad.seen.length, 3, "bad endpoint ejected after 3 errors");
  const codes = await Promise.all(Array.from({ length: 20 }, () => request(port).then((r) => r.status)));
  t.ok(codes.every((c) => c === 200));
  t.equal((await metricValue("ambit_waypoint_ejections_total")) - before, 1);
});

t.test("local rate limit answers 429 with RateLimit headers", async (t) => {
  const a = await httpBackend(t, "a");
  const svc = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
    rateLimit: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 60_000 },
  });
  const { port } = await startWaypoint(t, [svc]);
  const codes: number[] = [];
  let last: Awaited<ReturnType<typeof request>> | undefined;
  for (let i = 0; i < 8; i++) {
    last = await request(port);
    codes.push(last.status);
  }
  t.same(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
  t.equal(last!.headers["ratelimit-policy"], '"local";q=5;w=60');
  t.match(String(last!.headers.ratelimit), /^"local";r=0;t=\d+$/);
  t.ok(Number(last!.headers["retry-after"]) > 0);
  t.ok((await metricValue("ambit_waypoint_ratelimited_total")) >= 3);
  t.ok(
    (await metricValue("istio_requests_total", { response_code: "429", reporter: "waypoint" })) >= 3,
    "request metrics count 429s",
  );
});

t.test(
  "consistent hash on a header keeps a key on one endpoint; least request and random spread",
  async (t) => {
    const bs = await Promise.all(["e0", "e1", "e2"].map((n) => httpBackend(t, n)));
    const ports = bs.map((b) => b.port);
    const svc = service({
      clusters: [
        cluster("hash", ports, { policy: { loadBalancer: { type: "CONSISTENT_HASH", header: "x-user" } } }),
        {
          ...cluster("lr", ports, { policy: { loadBalancer: { type: "LEAST_REQUEST" } } }),
          name: cname("lr"),
        },
        { ...cluster("rnd", ports, { policy: { loadBalancer: { type: "RANDOM" } } }), name: cname("rnd") },
      ],
      routes: [
        route("lr", {
          match: { path: { type: "PathPrefix", value: "/lr" } },
          backends: [{ cluster: cname("lr"), weight: 1 }],
        }),
        route("rnd", {
          match: { path: { type: "PathPrefix", value: "/rnd" } },
          backends: [{ cluster: cname("rnd"), weight: 1 }],
        }),
        route("hash", { backends: [{ cluster: cname("hash"), weight: 1 }] }),
      ],
    });
    const { port } = await startWaypoint(t, [svc]);
    for (const user of ["alice", "bob", "carol", "dave"]) {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++)
        seen.add(String((await request(port, { headers: { "x-user": user } })).json().backend));
      t.equal(seen.size, 1, `${user} always lands on one endpoint`);
    }
    for (const path of ["/lr", "/rnd"]) {
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) seen.add(String((await request(port, { path })).json().backend));
      t.equal(seen.size, 3, `${path} uses every endpoint`);
    }
  },
);

t.test(
  "maxRequestsPerConnection retires upstream connections; keep-alive reuses them otherwise",
  async (t) => {
    const ports = new Set<number>();
    const b = await httpBackend(t, "b", (req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      res.end("ok");
    });
    const limited = service({
      clusters: [cluster("b", [b.port], { policy: { connectionPool: { maxRequestsPerConnection: 2 } } })],
      routes: [route("r", { backends: [{ cluster: cname("b"), weight: 1 }] })],
    });
    const { port } = await startWaypoint(t, [limited]);
    for (let i = 0; i < 6; i++) t.equal((await request(port)).status, 200);
    t.equal(ports.size, 3, "two requests per upstream connection");
    ports.clear();
    const b2 = await httpBackend(t, "b2", (req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      res.end("ok");
    });
    const free = service({
      clusters: [cluster("b", [b2.port])],
      routes: [route("r", { backends: [{ cluster: cname("b"), weight: 1 }] })],
    });
    const w2 = await startWaypoint(t, [free]);
    for (let i = 0; i < 6; i++) await request(w2.port);
    t.equal(ports.size, 1, "one kept-alive upstream connection");
  },
);

t.test("large bodies stream through routes that retry or mirror (past the replay limit)", async (t) => {
  const big = await httpBackend(t, "big", (_req, res, body) => res.end(String(body.length)));
  const svc = service({
    clusters: [cluster("big", [big.port])],
    routes: [
      route("r", {
        backends: [{ cluster: cname("big"), weight: 1 }],
        retry: { attempts: 2, codes: [503], grpcCodes: [], backoffMs: 1 },
        filters: [{ type: "RequestMirror", cluster: cname("big"), percent: 100 }],
      }),
    ],
  });
  const { port } = await startWaypoint(t, [svc]);
  const body = "x".repeat(3 * 1024 * 1024 + 7);
  const r = await request(port, { method: "POST", body });
  t.equal(r.status, 200);
  t.equal(r.body, String(body.length), "the whole body arrived");
  const small = await request(port, { method: "POST", body: "abc" });
  t.equal(small.body, "3");
});

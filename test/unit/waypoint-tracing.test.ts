// Request spans over OTLP/HTTP: a real loopback receiver decoding the JSON
// export, the waypoint's span parented on the caller's traceparent, the
// attributes (route, upstream, retry attempts, fault), and a collector that
// is down: requests unaffected, spans dropped and counted.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { RequestTracer, tracesUrl } from "../../waypoint/tracing.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import {
  closeClientAgent,
  cluster,
  cname,
  httpBackend,
  request,
  route,
  service,
  VIP,
} from "./waypoint-harness.js";

t.teardown(closeClientAgent);

interface Teardown {
  teardown(fn: () => unknown): void;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number };
  attributes: { key: string; value: Record<string, unknown> }[];
}

function attr(s: OtlpSpan, key: string): unknown {
  const a = s.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  const v = a.value;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
}

/** A tiny OTLP/HTTP receiver: decodes JSON export requests into spans. */
async function receiver(tt: Teardown) {
  const spans: OtlpSpan[] = [];
  const waiters: (() => void)[] = [];
  const contentTypes: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      contentTypes.push(String(req.headers["content-type"]));
      if (req.url !== "/v1/traces") return res.writeHead(404).end();
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  tt.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    contentTypes,
    async until(n: number): Promise<void> {
      while (spans.length < n) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

async function counterValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get()) as
    | { values: { value: number; labels: Record<string, unknown> }[] }
    | undefined;
  let sum = 0;
  for (const v of m?.values ?? [])
    if (Object.entries(labels).every(([k, x]) => v.labels[k] === x)) sum += v.value;
  return sum;
}

async function tracedWaypoint(tt: Teardown, tracer: RequestTracer, backendPort: number) {
  await tracer.start();
  const wp = new Waypoint({ tracer });
  await wp.start();
  wp.applyServices([
    service({
      clusters: [cluster("web", [backendPort])],
      routes: [
        route("http/default/faulty/rule/0/match/0", {
          match: { path: { type: "PathPrefix", value: "/fault" } },
          filters: [{ type: "Fault", fault: { abort: { httpStatus: 503, percent: 100 } } }],
          backends: [{ cluster: cname("web"), weight: 1 }],
        }),
        route("http/default/web/rule/0/match/0", {
          match: { path: { type: "PathPrefix", value: "/" } },
          backends: [{ cluster: cname("web"), weight: 1 }],
          retry: { attempts: 2, codes: [503], grpcCodes: [], backoffMs: 1 },
        }),
      ],
    }),
  ]);
  const addr = await wp.listenTcp({ port: 0, dst: { ip: VIP, port: 80 } });
  tt.teardown(async () => {
    await wp.close();
    await tracer.close();
  });
  return addr.port;
}

t.test("tracesUrl appends /v1/traces once", async (t) => {
  t.equal(tracesUrl("http://c:4318"), "http://c:4318/v1/traces");
  t.equal(tracesUrl("http://c:4318/"), "http://c:4318/v1/traces");
  t.equal(tracesUrl("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
});

t.test("one span per request, child of the caller, with route, upstream, retries and fault", async (t) => {
  const rx = await receiver(t);
  let calls = 0;
  const backend = await httpBackend(t, "web", (req, res) => {
    calls++;
    // first attempt of /retry fails: the span records 2 attempts
    if (req.url?.startsWith("/retry") && calls === 1) return res.writeHead(503).end("busy");
    res.writeHead(200).end(JSON.stringify({ traceparent: req.headers.traceparent }));
  });
  const tracer = new RequestTracer({ endpoint: rx.url, serviceName: "wp-test", scheduledDelayMs: 20 });
  const port = await tracedWaypoint(t, tracer, backend.port);

  const callerTrace = "0af7651916cd43dd8448eb211c80319c";
  const callerSpan = "b7ad6b7169203331";
  const r1 = await request(port, {
    path: "/retry?x=1",
    headers: { traceparent: `00-${callerTrace}-${callerSpan}-01` },
  });
  t.equal(r1.status, 200);
  const r2 = await request(port, { path: "/fault/x" });
  t.equal(r2.status, 503);
  await tracer.flush();
  await rx.until(2);
  t.match(rx.contentTypes[0], /application\/json/);

  const s1 = rx.spans.find((s) => attr(s, "url.path") === "/retry");
  const s2 = rx.spans.find((s) => attr(s, "url.path") === "/fault/x");
  if (!s1 || !s2) throw new Error(`spans missing: ${JSON.stringify(rx.spans)}`);
  t.equal(s1.traceId, callerTrace, "same trace as the caller");
  t.equal(s1.parentSpanId, callerSpan, "parent is the caller's span");
  t.equal(s1.kind, 2, "server span");
  const upstreamTp = JSON.parse(r1.body).traceparent as string;
  t.equal(upstreamTp, `00-${callerTrace}-${s1.spanId}-01`, "upstream's parent is the exported span");
  t.equal(attr(s1, "ambit.route"), "http/default/web/rule/0/match/0");
  t.equal(attr(s1, "ambit.retry.attempts"), 2);
  t.equal(attr(s1, "ambit.upstream"), `127.0.0.1:${backend.port}`);
  t.equal(attr(s1, "http.response.status_code"), 200);
  t.equal(attr(s1, "ambit.destination_service"), "web.default.svc.cluster.local");
  t.equal(s1.name, "GET http/default/web/rule/0/match/0");

  t.equal(attr(s2, "ambit.fault"), "abort");
  t.equal(attr(s2, "ambit.response_flags"), "FI");
  t.equal(attr(s2, "http.response.status_code"), 503);
  t.equal(s2.status?.code, 2, "5xx marks the span as an error");
  t.notOk(s2.parentSpanId, "no traceparent in: a root span");
  t.equal(s2.traceId.length, 32);
});

t.test("collector down: requests are not slowed, spans are dropped and counted", async (t) => {
  // a port that was just free: nothing listens there
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));

  const backend = await httpBackend(t, "web");
  const tracer = new RequestTracer({
    endpoint: `http://127.0.0.1:${deadPort}`,
    serviceName: "wp-test",
    maxQueue: 4,
    maxBatch: 4,
    scheduledDelayMs: 60_000,
    exportTimeoutMs: 2000,
  });
  const port = await tracedWaypoint(t, tracer, backend.port);
  const fullBefore = await counterValue("ambit_waypoint_spans_dropped_total", { reason: "queue_full" });
  const failedBefore = await counterValue("ambit_waypoint_spans_dropped_total", { reason: "export_failed" });

  const t0 = performance.now();
  for (let i = 0; i < 20; i++) t.equal((await request(port, { path: `/n${i}` })).status, 200);
  const elapsed = performance.now() - t0;
  t.ok(elapsed < 2000, `20 requests took ${elapsed.toFixed(0)} ms with the collector down`);

  const full =
    (await counterValue("ambit_waypoint_spans_dropped_total", { reason: "queue_full" })) - fullBefore;
  t.ok(full >= 16, `spans beyond the queue bound dropped and counted (${full})`);
  t.ok(tracer.pending <= 4, "queue stays bounded");
  await tracer.flush();
  await tracer.whenIdle();
  const failed =
    (await counterValue("ambit_waypoint_spans_dropped_total", { reason: "export_failed" })) - failedBefore;
  t.equal(failed, 4, "the queued spans fail to export and are counted");
  t.equal(tracer.pending, 0, "queue room released after the failed export");
  t.equal((await request(port, { path: "/after" })).status, 200);
});

t.test("no tracer: no spans, traceparent still continued", async (t) => {
  const backend = await httpBackend(t, "web", (req, res) =>
    res.writeHead(200).end(String(req.headers.traceparent)),
  );
  const wp = new Waypoint();
  await wp.start();
  wp.applyServices([
    service({
      clusters: [cluster("web", [backend.port])],
      routes: [route("r", { backends: [{ cluster: cname("web"), weight: 1 }] })],
    }),
  ]);
  const addr = await wp.listenTcp({ port: 0, dst: { ip: VIP, port: 80 } });
  t.teardown(() => wp.close());
  const r = await request(addr.port, {
    headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  });
  t.match(r.body, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  t.notMatch(r.body, /b7ad6b7169203331/);
});

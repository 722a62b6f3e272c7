// The waypoint's request metrics are tallied per label set and applied to the
// prom-client metrics when read: what a scrape shows must equal what
// per-request inc()/observe() would have shown (counts, sums, buckets),
// across connections of the same edge, and nothing is counted twice.
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { type DestinationLabels, recordRequest, type SourceLabels } from "../../waypoint/telemetry.js";

type Value = { labels: Record<string, string | number>; value: number; metricName?: string };

async function series(name: string, match: Record<string, string>): Promise<Value[]> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const got = (await m.get()).values as Value[];
  return got.filter((v) => Object.entries(match).every(([k, x]) => v.labels[k] === x));
}

t.test("tallied request metrics read as per-request observations would", async (t) => {
  const dst: DestinationLabels = { service: "tally.ns.svc.cluster.local", workload: "w", namespace: "ns" };
  // Two connections of the same caller: distinct label objects, one series.
  const a: SourceLabels = { workload: "caller", namespace: "ns", principal: "spiffe://td/ns/ns/sa/c" };
  const b: SourceLabels = { ...a };
  const sel = { destination_service: dst.service, response_code: "200" };
  recordRequest(a, dst, { code: 200, grpc: false, durationMs: 0.3, requestBytes: 0, responseBytes: 1024 });
  recordRequest(b, dst, { code: 200, grpc: false, durationMs: 7, requestBytes: 50, responseBytes: 1024 });
  recordRequest(a, dst, { code: 200, grpc: false, durationMs: 40_000, requestBytes: 5, responseBytes: 20 });
  recordRequest(a, dst, { code: 503, grpc: false, durationMs: 1, requestBytes: 0, responseBytes: 0 });

  const total = await series("istio_requests_total", sel);
  t.equal(total.length, 1, "one series for both connections");
  t.equal(total[0]?.value, 3);
  t.equal((await series("istio_requests_total", { ...sel, response_code: "503" }))[0]?.value, 1);

  const dur = await series("istio_request_duration_milliseconds", sel);
  const bucket = (le: number | string) =>
    dur.find((v) => v.metricName?.endsWith("_bucket") && v.labels.le === le)?.value;
  t.equal(bucket(0.5), 1, "0.3 ms in le=0.5");
  t.equal(bucket(5), 1, "cumulative: still 1 at le=5");
  t.equal(bucket(10), 2, "7 ms in le=10");
  t.equal(bucket(30000), 2, "40 s is beyond the last bound");
  t.equal(bucket("+Inf"), 3, "... but counted in +Inf");
  t.equal(dur.find((v) => v.metricName?.endsWith("_sum"))?.value, 40_007.3);
  t.equal(dur.find((v) => v.metricName?.endsWith("_count"))?.value, 3);
  const res = await series("istio_response_bytes", sel);
  t.equal(res.find((v) => v.metricName?.endsWith("_sum"))?.value, 2068);

  // Read again: nothing added twice; then one more request shows.
  t.equal((await series("istio_requests_total", sel))[0]?.value, 3, "a second read adds nothing");
  recordRequest(b, dst, { code: 200, grpc: false, durationMs: 2, requestBytes: 0, responseBytes: 0 });
  t.equal((await series("istio_requests_total", sel))[0]?.value, 4);
  const dur2 = await series("istio_request_duration_milliseconds", sel);
  t.equal(dur2.find((v) => v.metricName?.endsWith("_count"))?.value, 4);
  t.equal(dur2.find((v) => v.metricName?.endsWith("_bucket") && v.labels.le === 5)?.value, 2, "0.3 and 2 ms");
  const text = await registry.metrics();
  t.match(
    text,
    /istio_requests_total\{[^}]*destination_service="tally\.ns\.svc\.cluster\.local"[^}]*response_code="200"[^}]*\} 4/,
  );
});

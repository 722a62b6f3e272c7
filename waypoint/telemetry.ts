// Per-request telemetry kept cheap: W3C traceparent continued (or started),
// Istio request metrics through cached label children, retry counter, and an
// access log line for a sample of requests only (AMBIT_ACCESS_LOG_SAMPLE
// is read by the wiring point and passed in; 5xx are always logged at debug).
import { randomBytes } from "node:crypto";
import { logger } from "../core/telemetry/logger.js";
import { counter, type RequestLabels, requestMetrics } from "../core/telemetry/metrics.js";

export const retriesTotal = counter("ambit_waypoint_retries_total", "Upstream request retries", ["cluster"]);
const log = logger("waypoint.access");

// Random ids from a refilled pool: one randomBytes call per 512 ids.
let pool = Buffer.alloc(0);
let off = 0;
function hex(n: number): string {
  if (off + n > pool.length) {
    pool = randomBytes(4096);
    off = 0;
  }
  const s = pool.toString("hex", off, off + n);
  off += n;
  return s;
}

export interface TraceContext {
  traceId: string;
  /** The waypoint's span id, sent upstream as parent. */
  spanId: string;
  /** The caller's span id, if any. */
  parentId?: string;
  flags: string;
}

const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function traceFrom(header: string | string[] | undefined): TraceContext {
  const h = Array.isArray(header) ? header[0] : header;
  const m = h ? TP.exec(h.trim()) : null;
  if (m && m[1] !== "00000000000000000000000000000000" && m[2] !== "0000000000000000")
    return { traceId: m[1]!, parentId: m[2]!, spanId: hex(8), flags: m[3]! };
  return { traceId: hex(16), spanId: hex(8), flags: "01" };
}

export function traceparent(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.flags}`;
}

/** Who called: one object per connection (or per source), resolved once. */
export interface SourceLabels {
  principal?: string;
  workload?: string;
  namespace?: string;
}

/** Where the request went: one object per endpoint (or per service when none was picked). */
export interface DestinationLabels {
  service: string;
  workload?: string;
  namespace?: string;
  principal?: string;
}

export const UNKNOWN_DESTINATION: DestinationLabels = Object.freeze({ service: "unknown" });

/** The namespace in a SPIFFE id `spiffe://TD/ns/NS/sa/SA`. */
export function namespaceOfIdentity(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf("/ns/");
  if (i < 0) return undefined;
  const j = id.indexOf("/", i + 4);
  return id.slice(i + 4, j < 0 ? undefined : j) || undefined;
}

export function requestLabelSet(
  src: SourceLabels,
  dst: DestinationLabels,
  code: number,
  grpc: boolean,
): RequestLabels {
  return {
    reporter: "waypoint",
    source_workload: src.workload ?? "unknown",
    source_workload_namespace: src.namespace ?? "unknown",
    source_principal: src.principal ?? "unknown",
    destination_service: dst.service,
    destination_workload: dst.workload ?? "unknown",
    destination_workload_namespace: dst.namespace ?? "unknown",
    destination_principal: dst.principal ?? "unknown",
    connection_security_policy: src.principal ? "mutual_tls" : "none",
    response_code: String(code),
    request_protocol: grpc ? "grpc" : "http",
  };
}

// Per-request recording without prom-client on the path: a request adds to
// the tally of its (source, destination, code, protocol), found by three map
// lookups on objects resolved once per connection and per endpoint; the
// tallies are applied to the metrics when they are read (their collect hook),
// so a scrape sees every request that has finished. prom-client's own
// children hash all 11 labels on every inc() and observe(), four times per
// request.
interface HistTally {
  /** Observations per bucket of the metric's upper bounds (beyond the last: only in count). */
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface RequestTally {
  readonly labels: RequestLabels;
  total: number;
  readonly duration: HistTally;
  readonly reqBytes: HistTally;
  readonly resBytes: HistTally;
}

type HistogramMetric = (typeof requestMetrics)["duration"];
/** What a prom-client 15 Histogram keeps per label set (read and added to in place by flush). */
interface HistEntry {
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}
interface HistInternals {
  hashMap: Record<string, HistEntry>;
  upperBounds: readonly number[];
  sortedLabelNames: readonly string[];
}

const durationBounds = (requestMetrics.duration as unknown as HistInternals).upperBounds;
const bytesBounds = (requestMetrics.requestBytes as unknown as HistInternals).upperBounds;

function histTally(bounds: readonly number[]): HistTally {
  return { buckets: new Array<number>(bounds.length).fill(0), sum: 0, count: 0 };
}

function observeInto(t: HistTally, bounds: readonly number[], v: number): void {
  t.sum += v;
  t.count++;
  for (let i = 0; i < bounds.length; i++)
    if (v <= bounds[i]!) {
      t.buckets[i]!++;
      return;
    }
}

/** Adds a tally to the histogram's series for `labels` (what observe() would have done, in bulk). */
function addToHistogram(h: HistogramMetric, labels: RequestLabels, t: HistTally): void {
  if (t.count === 0) return;
  const x = h as unknown as HistInternals;
  let key = "";
  for (const k of x.sortedLabelNames) key += `${k}:${labels[k as keyof RequestLabels]},`;
  let e = x.hashMap[key];
  if (!e) {
    h.zero(labels);
    e = x.hashMap[key]!;
  }
  const b = x.upperBounds;
  for (let i = 0; i < b.length; i++) {
    const n = t.buckets[i]!;
    if (n > 0) {
      e.bucketValues[b[i]!] = (e.bucketValues[b[i]!] ?? 0) + n;
      t.buckets[i] = 0;
    }
  }
  e.sum += t.sum;
  e.count += t.count;
  t.sum = 0;
  t.count = 0;
}

/**
 * One tally per label set, so as bounded as the metrics' own series: label
 * objects are per connection, but connections of the same edge share a tally.
 */
const tallies = new Map<string, RequestTally>();

function tallyFor(labels: RequestLabels): RequestTally {
  let key = "";
  for (const k in labels) key += `${labels[k as keyof RequestLabels]}\u0000`;
  let t = tallies.get(key);
  if (!t) {
    t = {
      labels,
      total: 0,
      duration: histTally(durationBounds),
      reqBytes: histTally(bytesBounds),
      resBytes: histTally(bytesBounds),
    };
    tallies.set(key, t);
  }
  return t;
}

function flushRequestTallies(): void {
  for (const t of tallies.values()) {
    if (t.total > 0) {
      requestMetrics.total.inc(t.labels, t.total);
      t.total = 0;
    }
    addToHistogram(requestMetrics.duration, t.labels, t.duration);
    addToHistogram(requestMetrics.requestBytes, t.labels, t.reqBytes);
    addToHistogram(requestMetrics.responseBytes, t.labels, t.resBytes);
  }
}

// Every read of any of the four flushes all tallies first.
for (const m of [
  requestMetrics.total,
  requestMetrics.duration,
  requestMetrics.requestBytes,
  requestMetrics.responseBytes,
]) {
  const x = m as unknown as { collect?: () => unknown };
  const prev = x.collect;
  x.collect = prev
    ? () => {
        flushRequestTallies();
        return prev.call(m);
      }
    : flushRequestTallies;
}

// (source object, destination object, code and protocol) → tally.
const bySource = new WeakMap<SourceLabels, WeakMap<DestinationLabels, Map<number, RequestTally>>>();

export interface RequestRecord {
  code: number;
  grpc: boolean;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export function recordRequest(src: SourceLabels, dst: DestinationLabels, r: RequestRecord): void {
  let byDst = bySource.get(src);
  if (!byDst) {
    byDst = new WeakMap();
    bySource.set(src, byDst);
  }
  let byCode = byDst.get(dst);
  if (!byCode) {
    byCode = new Map();
    byDst.set(dst, byCode);
  }
  const key = r.code * 2 + (r.grpc ? 1 : 0);
  let t = byCode.get(key);
  if (!t) {
    t = tallyFor(requestLabelSet(src, dst, r.code, r.grpc));
    byCode.set(key, t);
  }
  t.total++;
  observeInto(t.duration, durationBounds, r.durationMs);
  observeInto(t.reqBytes, bytesBounds, r.requestBytes);
  observeInto(t.resBytes, bytesBounds, r.responseBytes);
}

export interface AccessLogEntry {
  method: string;
  path: string;
  code: number;
  durationMs: number;
  route?: string;
  upstream?: string;
  attempts: number;
  trace: TraceContext;
  flags?: string;
}

export type AccessLogSink = (line: Record<string, unknown>) => void;

const toLogger: AccessLogSink = (line) => log.info(line, "request");

/** Logs a sample (`rate` 0..1) of requests; never formats anything for the rest. */
export class AccessLog {
  constructor(
    private readonly rate: number,
    private readonly sink: AccessLogSink = toLogger,
  ) {}
  maybe(e: AccessLogEntry): void {
    if (this.rate <= 0 || (this.rate < 1 && Math.random() >= this.rate)) return;
    this.sink({
      method: e.method,
      path: e.path,
      code: e.code,
      duration_ms: Math.round(e.durationMs * 100) / 100,
      route: e.route,
      upstream: e.upstream,
      attempts: e.attempts,
      traceparent: traceparent(e.trace),
      flags: e.flags,
    });
  }
}

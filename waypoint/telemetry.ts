// Per-request telemetry kept cheap: W3C traceparent continued (or started),
// Istio request metrics through cached label children, retry counter, and an
// access log line for a sample of requests only (AMBIT_ACCESS_LOG_SAMPLE
// is read by the wiring point and passed in; 5xx are always logged at debug).
import { randomBytes } from "node:crypto";
import type { Counter, Histogram } from "prom-client";
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

interface Children {
  total: ReturnType<Counter<string>["labels"]>;
  duration: ReturnType<Histogram<string>["labels"]>;
  reqBytes: ReturnType<Histogram<string>["labels"]>;
  resBytes: ReturnType<Histogram<string>["labels"]>;
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

// (source object, destination object, code and protocol) → label children. The
// label set is built once per key; a request only walks three map lookups.
const children = new WeakMap<SourceLabels, WeakMap<DestinationLabels, Map<number, Children>>>();

export interface RequestRecord {
  code: number;
  grpc: boolean;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export function recordRequest(src: SourceLabels, dst: DestinationLabels, r: RequestRecord): void {
  let byDst = children.get(src);
  if (!byDst) {
    byDst = new WeakMap();
    children.set(src, byDst);
  }
  let byCode = byDst.get(dst);
  if (!byCode) {
    byCode = new Map();
    byDst.set(dst, byCode);
  }
  const key = r.code * 2 + (r.grpc ? 1 : 0);
  let c = byCode.get(key);
  if (!c) {
    const labels = requestLabelSet(src, dst, r.code, r.grpc);
    c = {
      total: requestMetrics.total.labels(labels),
      duration: requestMetrics.duration.labels(labels),
      reqBytes: requestMetrics.requestBytes.labels(labels),
      resBytes: requestMetrics.responseBytes.labels(labels),
    };
    byCode.set(key, c);
  }
  c.total.inc();
  c.duration.observe(r.durationMs);
  c.reqBytes.observe(r.requestBytes);
  c.resBytes.observe(r.responseBytes);
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

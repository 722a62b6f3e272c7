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
const children = new Map<string, Children>();

export interface RequestRecord {
  service: string;
  sourcePrincipal?: string;
  sourceWorkload?: string;
  sourceNamespace?: string;
  destinationWorkload?: string;
  destinationNamespace?: string;
  code: number;
  protocol: "http" | "grpc";
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export function recordRequest(r: RequestRecord): void {
  const key = `${r.service}|${r.code}|${r.protocol}|${r.sourcePrincipal ?? ""}|${r.sourceWorkload ?? ""}`;
  let c = children.get(key);
  if (!c) {
    const labels: RequestLabels = {
      reporter: "waypoint",
      source_workload: r.sourceWorkload ?? "unknown",
      source_workload_namespace: r.sourceNamespace ?? "unknown",
      source_principal: r.sourcePrincipal ?? "unknown",
      destination_service: r.service,
      destination_workload: r.destinationWorkload ?? "unknown",
      destination_workload_namespace: r.destinationNamespace ?? "unknown",
      destination_principal: "unknown",
      connection_security_policy: r.sourcePrincipal ? "mutual_tls" : "none",
      response_code: String(r.code),
      request_protocol: r.protocol,
    };
    c = {
      total: requestMetrics.total.labels(labels),
      duration: requestMetrics.duration.labels(labels),
      reqBytes: requestMetrics.requestBytes.labels(labels),
      resBytes: requestMetrics.responseBytes.labels(labels),
    };
    if (children.size < 10_000) children.set(key, c);
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

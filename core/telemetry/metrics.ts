// The shared prom-client registry and the metric names every component uses.
// Istio's standard names (istio_*) keep existing dashboards working; ambit's
// own process metrics use the ambit_ prefix. Labels never carry pod IPs or
// paths, so cardinality stays bounded.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export const registry = new Registry();
let defaultsOn = false;
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: "ambit_process_" });
}

/** Labels of Istio's standard connection and request metrics. */
export const istioLabels = [
  "reporter",
  "source_workload",
  "source_workload_namespace",
  "source_principal",
  "destination_service",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "connection_security_policy",
] as const;
export type IstioLabel = (typeof istioLabels)[number];
export type IstioLabels = Record<IstioLabel, string>;

const requestLabels = [...istioLabels, "response_code", "request_protocol"] as const;
export type RequestLabels = Record<(typeof requestLabels)[number], string>;

function once<T>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * Pending istio_tcp_* increments of one label set (one edge of the graph).
 * A connection adds to its edge's tally (found once per connection by one
 * string key) instead of hashing nine labels for each of four counters; the
 * tallies are applied to the counters whenever they are read (their collect
 * hook), so a scrape sees every connection that has closed.
 */
export interface TcpTally {
  readonly labels: IstioLabels;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

const tcpTallies = new Map<string, TcpTally>();

/** The tally of one label set; as bounded as the counters' own label sets (labels never carry IPs). */
export function tcpTally(labels: IstioLabels): TcpTally {
  let key = labels.reporter;
  for (let i = 1; i < istioLabels.length; i++) key += `\u0000${labels[istioLabels[i] as IstioLabel]}`;
  let t = tcpTallies.get(key);
  if (!t) {
    t = { labels: { ...labels }, opened: 0, closed: 0, sent: 0, received: 0 };
    tcpTallies.set(key, t);
  }
  return t;
}

function flushTcpTallies(): void {
  for (const t of tcpTallies.values()) {
    if (t.opened > 0) tcpMetrics.opened.inc(t.labels, t.opened);
    if (t.closed > 0) tcpMetrics.closed.inc(t.labels, t.closed);
    if (t.sent > 0) tcpMetrics.sent.inc(t.labels, t.sent);
    if (t.received > 0) tcpMetrics.received.inc(t.labels, t.received);
    t.opened = t.closed = t.sent = t.received = 0;
  }
}

/** ztunnel: istio_tcp_* with reporter="source"|"destination" (fed through tcpTally; direct inc() works too). */
export const tcpMetrics = {
  opened: once(
    "istio_tcp_connections_opened_total",
    () =>
      new Counter({
        name: "istio_tcp_connections_opened_total",
        help: "TCP connections opened",
        labelNames: istioLabels,
        registers: [registry],
        collect: flushTcpTallies,
      }),
  ),
  closed: once(
    "istio_tcp_connections_closed_total",
    () =>
      new Counter({
        name: "istio_tcp_connections_closed_total",
        help: "TCP connections closed",
        labelNames: istioLabels,
        registers: [registry],
        collect: flushTcpTallies,
      }),
  ),
  sent: once(
    "istio_tcp_sent_bytes_total",
    () =>
      new Counter({
        name: "istio_tcp_sent_bytes_total",
        help: "Bytes sent by the source (toward the destination)",
        labelNames: istioLabels,
        registers: [registry],
        collect: flushTcpTallies,
      }),
  ),
  received: once(
    "istio_tcp_received_bytes_total",
    () =>
      new Counter({
        name: "istio_tcp_received_bytes_total",
        help: "Bytes received by the source (from the destination)",
        labelNames: istioLabels,
        registers: [registry],
        collect: flushTcpTallies,
      }),
  ),
};

/**
 * ztunnel: connections its L4 authorization denied, with the same edge labels
 * as istio_tcp_* (reporter="destination") plus the bounded `reason`, so that a
 * denial shows as an error on its edge in the dashboard. Istio has no
 * standard name for this, hence the ambit_ prefix.
 */
export const tcpDenied = once(
  "ambit_tcp_connections_denied_total",
  () =>
    new Counter({
      name: "ambit_tcp_connections_denied_total",
      help: "Connections denied by L4 authorization, per source and destination",
      labelNames: [...istioLabels, "reason"],
      registers: [registry],
    }),
);

/** waypoint: istio_requests_total and friends. */
export const requestMetrics = {
  total: once(
    "istio_requests_total",
    () =>
      new Counter({
        name: "istio_requests_total",
        help: "Requests handled",
        labelNames: requestLabels,
        registers: [registry],
      }),
  ),
  duration: once(
    "istio_request_duration_milliseconds",
    () =>
      new Histogram({
        name: "istio_request_duration_milliseconds",
        help: "Request duration",
        labelNames: requestLabels,
        buckets: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
        registers: [registry],
      }),
  ),
  requestBytes: once(
    "istio_request_bytes",
    () =>
      new Histogram({
        name: "istio_request_bytes",
        help: "Request body sizes",
        labelNames: requestLabels,
        buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000],
        registers: [registry],
      }),
  ),
  responseBytes: once(
    "istio_response_bytes",
    () =>
      new Histogram({
        name: "istio_response_bytes",
        help: "Response body sizes",
        labelNames: requestLabels,
        buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000],
        registers: [registry],
      }),
  ),
};

/** Helpers for components' own ambit_* metrics, registered once per process. */
export function counter(name: string, help: string, labelNames: readonly string[] = []): Counter<string> {
  return once(name, () => new Counter({ name, help, labelNames, registers: [registry] }));
}
export function gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge<string> {
  return once(name, () => new Gauge({ name, help, labelNames, registers: [registry] }));
}
export function histogram(
  name: string,
  help: string,
  labelNames: readonly string[] = [],
  buckets?: number[],
): Histogram<string> {
  return once(
    name,
    () => new Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) }),
  );
}

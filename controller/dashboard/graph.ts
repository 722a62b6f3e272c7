// The service graph as data: Prometheus text from each proxy → samples →
// edges between workloads and services with request rate, error rate, p99
// and bytes, from the difference of two scrapes. Pure: no I/O here.
import type { MeshService, MeshWorkload } from "../../core/model/types.js";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Prometheus text exposition → samples (comments and malformed lines skipped). */
export function parsePromText(text: string, only?: (name: string) => boolean): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.charCodeAt(0) === 35 /* # */) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const name = m[1]!;
    if (only && !only(name)) continue;
    const labels: Record<string, string> = {};
    if (m[2])
      for (const l of m[2].matchAll(LABEL))
        labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    const value = Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name, labels, value });
  }
  return out;
}

export const GRAPH_METRICS = new Set([
  "istio_requests_total",
  "istio_request_duration_milliseconds_bucket",
  "istio_request_bytes_sum",
  "istio_response_bytes_sum",
  "istio_tcp_connections_opened_total",
  "istio_tcp_sent_bytes_total",
  "istio_tcp_received_bytes_total",
  "ambit_tcp_connections_denied_total",
]);

/** Seconds until a certificate expires, by identity (ztunnel's gauge). */
export const CERT_EXPIRY_METRIC = "ambit_cert_expiry_seconds";

/** Every metric the dashboard reads from a scrape. */
export const DASHBOARD_METRICS = new Set([...GRAPH_METRICS, CERT_EXPIRY_METRIC]);

/** identity → seconds until its certificate expires (the soonest, when several proxies hold one). */
export function certExpiries(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== CERT_EXPIRY_METRIC || !s.labels.identity) continue;
    const before = out.get(s.labels.identity);
    if (before === undefined || s.value < before) out.set(s.labels.identity, s.value);
  }
  return out;
}

/** Per edge, cumulative counters (one scrape of every target summed). */
export interface EdgeTotals {
  source: string;
  target: string;
  requests: number;
  errors: number;
  /** le → cumulative count of the request duration histogram. */
  buckets: Map<number, number>;
  bytes: number;
  connections: number;
  /** Connections the destination's ztunnel denied (L4 authorization). */
  denied: number;
  mtls: boolean;
  waypoint: boolean;
  reporter: string;
}

/** The one workload seen calling `target` as `principal`, else a node for the identity (`ns/sa:name`). */
function callerOf(principal: string | undefined, target: string, callers: Map<string, Set<string>>): string {
  if (!principal || principal === "unknown") return "unknown/unknown";
  const seen = callers.get(`${principal}|${target}`);
  if (seen?.size === 1) return [...seen][0]!;
  const m = /\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal);
  return m ? `${m[1]}/sa:${m[2]}` : "unknown/unknown";
}

const REPORTER_RANK: Record<string, number> = { waypoint: 3, destination: 2, source: 1 };

function nodeId(ns: string | undefined, name: string | undefined): string | undefined {
  if (!name || name === "unknown") return undefined;
  return `${ns && ns !== "unknown" ? ns : "unknown"}/${name}`;
}

/** The service node for a destination_service hostname (`name.ns.svc...`). */
function serviceNode(host: string | undefined): string | undefined {
  if (!host || host === "unknown") return undefined;
  const [name, ns] = host.split(".");
  return ns ? `${ns}/svc:${name}` : `unknown/svc:${host}`;
}

/**
 * Sums samples into edges. One request is reported by several proxies
 * (ztunnel as source and destination, the waypoint); per edge only the most
 * specific reporter counts, so nothing is counted twice.
 */
export function edgeTotals(samples: Sample[]): Map<string, EdgeTotals> {
  const targetOf = (l: Record<string, string>) =>
    serviceNode(l.destination_service) ??
    nodeId(l.destination_workload_namespace, l.destination_workload) ??
    "unknown/unknown";
  // A waypoint knows the caller's identity, not its workload; the caller's
  // ztunnel reports both for the same destination. Identity + destination →
  // the workloads the ztunnels saw: when there is one, the waypoint's
  // requests are that workload's.
  const callers = new Map<string, Set<string>>();
  for (const s of samples) {
    const l = s.labels;
    const source = nodeId(l.source_workload_namespace, l.source_workload);
    if (!source || !l.source_principal || l.source_principal === "unknown") continue;
    const k = `${l.source_principal}|${targetOf(l)}`;
    const set = callers.get(k) ?? new Set<string>();
    callers.set(k, set);
    set.add(source);
  }
  const byReporter = new Map<string, Map<string, EdgeTotals>>();
  for (const s of samples) {
    if (!GRAPH_METRICS.has(s.name)) continue;
    const l = s.labels;
    const target = targetOf(l);
    const source =
      nodeId(l.source_workload_namespace, l.source_workload) ?? callerOf(l.source_principal, target, callers);
    const key = `${source}->${target}`;
    const reporter = l.reporter ?? "source";
    let m = byReporter.get(key);
    if (!m) {
      m = new Map();
      byReporter.set(key, m);
    }
    let e = m.get(reporter);
    if (!e) {
      e = {
        source,
        target,
        requests: 0,
        errors: 0,
        buckets: new Map(),
        bytes: 0,
        connections: 0,
        denied: 0,
        mtls: false,
        waypoint: false,
        reporter,
      };
      m.set(reporter, e);
    }
    if (l.connection_security_policy === "mutual_tls") e.mtls = true;
    if (reporter === "waypoint") e.waypoint = true;
    switch (s.name) {
      case "istio_requests_total": {
        e.requests += s.value;
        const code = Number(l.response_code);
        if (!(code >= 100 && code < 400)) e.errors += s.value;
        break;
      }
      case "istio_request_duration_milliseconds_bucket": {
        const le = l.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(l.le);
        e.buckets.set(le, (e.buckets.get(le) ?? 0) + s.value);
        break;
      }
      case "istio_request_bytes_sum":
      case "istio_response_bytes_sum":
      case "istio_tcp_sent_bytes_total":
      case "istio_tcp_received_bytes_total":
        e.bytes += s.value;
        break;
      case "istio_tcp_connections_opened_total":
        e.connections += s.value;
        break;
      case "ambit_tcp_connections_denied_total":
        e.denied += s.value;
        break;
    }
  }
  const out = new Map<string, EdgeTotals>();
  for (const [key, m] of byReporter) {
    const all = [...m.values()];
    // requests from the most specific reporter that saw requests; bytes/connections likewise
    const req = all.filter((e) => e.requests > 0).sort((a, b) => rank(b) - rank(a))[0];
    const l4 = all.filter((e) => e.connections > 0 || e.bytes > 0).sort((a, b) => rank(b) - rank(a))[0];
    const base = req ?? l4 ?? all[0]!;
    out.set(key, {
      ...base,
      bytes: (l4 ?? base).bytes,
      connections: (l4 ?? base).connections,
      // only the destination's ztunnel counts denials: nothing to double count
      denied: all.reduce((n, e) => n + e.denied, 0),
      mtls: all.some((e) => e.mtls),
      waypoint: all.some((e) => e.waypoint),
    });
  }
  return out;
}

function rank(e: EdgeTotals): number {
  return REPORTER_RANK[e.reporter] ?? 0;
}

/** p-quantile (0..1) from cumulative histogram buckets, interpolated as Prometheus does. */
export function quantile(q: number, buckets: Map<number, number>): number | undefined {
  const bs = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = bs.length ? bs[bs.length - 1]![1] : 0;
  if (total <= 0) return undefined;
  const rankQ = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of bs) {
    if (count >= rankQ) {
      if (le === Number.POSITIVE_INFINITY) return prevLe;
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rankQ - prevCount)) / (count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

export interface GraphNode {
  id: string;
  label: string;
  namespace: string;
  /** "waypoint": a workload serving as some service's or workload's waypoint. */
  kind: "workload" | "service" | "waypoint" | "unknown";
  /** Workloads: enrolled in the mesh (HBONE). */
  enrolled?: boolean;
  waypoint?: string;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  /** Requests per second (L7), or connections per second (L4 only); denied attempts included. */
  rps: number;
  /** Fraction of requests answered 4xx/5xx (or not at all) or connections denied, over the rate window. */
  errorRate: number;
  p99Ms?: number;
  /** Bytes per second, both directions. */
  bps: number;
  totalRequests: number;
  /** Errors since the proxies started: failed requests plus denied connections. */
  totalErrors: number;
  /** Connections denied by L4 authorization since the proxies started. */
  totalDenied: number;
  mtls: boolean;
  waypoint: boolean;
  protocol: "http" | "tcp";
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Service → each workload backing it (from the model, not from traffic). */
  links: { source: string; target: string }[];
  at: string;
}

/** Node ids of the workloads that serve as a waypoint (they back a Service named as one by address or hostname). */
function waypointWorkloads(model: { workloads: MeshWorkload[]; services: MeshService[] }): Set<string> {
  const refs = [...model.workloads, ...model.services].flatMap((x) => (x.waypoint ? [x.waypoint] : []));
  if (!refs.length) return new Set();
  const addresses = new Set(refs.flatMap((r) => (r.address ? [r.address] : [])));
  const hostnames = new Set(refs.flatMap((r) => (r.hostname ? [r.hostname.hostname] : [])));
  const keys = new Set(
    model.services
      .filter((s) => hostnames.has(s.hostname) || s.vips.some((v) => addresses.has(v)))
      .map((s) => s.key),
  );
  const out = new Set<string>();
  for (const w of model.workloads)
    if (Object.keys(w.services).some((k) => keys.has(k)) || w.ips.some((ip) => addresses.has(ip)))
      out.add(`${w.namespace}/${w.workloadName}`);
  return out;
}

function diffBuckets(now: Map<number, number>, before?: Map<number, number>): Map<number, number> {
  if (!before) return now;
  const out = new Map<number, number>();
  for (const [le, c] of now) out.set(le, Math.max(0, c - (before.get(le) ?? 0)));
  return out;
}

/**
 * The graph now: nodes from the model (every workload and service) plus any
 * party only the metrics name; edges with rates over `seconds` since `before`
 * (per edge when a function: the base of each edge is the oldest scrape that
 * saw it). An edge `before` lacks is new: no rate yet, since its counters'
 * start is unknown (a proxy just scraped for the first time, after a
 * controller restart, must not look like a burst of its whole history).
 */
export function buildGraph(
  model: { workloads: MeshWorkload[]; services: MeshService[] },
  now: Map<string, EdgeTotals>,
  before: Map<string, EdgeTotals> | undefined,
  seconds: number | ((edge: string) => number),
  at = new Date(),
): Graph {
  const nodes = new Map<string, GraphNode>();
  const waypoints = waypointWorkloads(model);
  for (const w of model.workloads) {
    const id = `${w.namespace}/${w.workloadName}`;
    if (!nodes.has(id))
      nodes.set(id, {
        id,
        label: w.workloadName,
        namespace: w.namespace,
        kind: waypoints.has(id) ? "waypoint" : "workload",
        enrolled: w.tunnel === "hbone",
        ...(w.waypoint ? { waypoint: "yes" } : {}),
      });
  }
  for (const s of model.services) {
    const id = `${s.namespace}/svc:${s.name}`;
    nodes.set(id, {
      id,
      label: s.name,
      namespace: s.namespace,
      kind: "service",
      ...(s.waypoint ? { waypoint: "yes" } : {}),
    });
  }
  const svcNode = new Map(model.services.map((s) => [s.key, `${s.namespace}/svc:${s.name}`]));
  const links = new Map<string, { source: string; target: string }>();
  for (const w of model.workloads)
    for (const key of Object.keys(w.services)) {
      const source = svcNode.get(key);
      const target = `${w.namespace}/${w.workloadName}`;
      if (source) links.set(`${source}->${target}`, { source, target });
    }
  const edges: GraphEdge[] = [];
  for (const [key, e] of now) {
    // A waypoint's own hops (callers' HBONE to it, its pooled HBONE to the
    // endpoints) would repeat its callers' edges, which carry the ◆ mark and
    // the request figures.
    if (waypoints.has(e.source) || waypoints.has(e.target)) continue;
    for (const id of [e.source, e.target])
      if (!nodes.has(id)) {
        const i = id.indexOf("/");
        const name = id.slice(i + 1);
        nodes.set(id, {
          id,
          label: name.replace(/^svc:/, ""),
          namespace: id.slice(0, i),
          kind: name.startsWith("svc:") ? "service" : "unknown",
        });
      }
    // A base counted by another reporter (the waypoint was not scraped yet) is no base.
    const b0 = before?.get(key);
    const b = b0 && b0.reporter === e.reporter ? b0 : undefined;
    const secs = typeof seconds === "function" ? seconds(key) : seconds;
    const dt = secs > 0 ? secs : 1;
    const dReq = Math.max(0, e.requests - (b?.requests ?? 0));
    const dErr = Math.max(0, e.errors - (b?.errors ?? 0));
    const dConn = Math.max(0, e.connections - (b?.connections ?? 0));
    const dBytes = Math.max(0, e.bytes - (b?.bytes ?? 0));
    const dDenied = Math.max(0, e.denied - (b?.denied ?? 0));
    const http = e.requests > 0;
    // A denied connection is an attempt that failed: it counts in the rate and as an error.
    const attempts = (http ? dReq : dConn) + dDenied;
    const p99 = quantile(0.99, diffBuckets(e.buckets, b?.buckets));
    edges.push({
      id: key,
      source: e.source,
      target: e.target,
      rps: b ? attempts / dt : 0,
      errorRate: attempts > 0 ? (dErr + dDenied) / attempts : 0,
      ...(p99 !== undefined ? { p99Ms: Math.round(p99 * 10) / 10 } : {}),
      bps: b ? dBytes / dt : 0,
      totalRequests: (http ? e.requests : e.connections) + e.denied,
      totalErrors: e.errors + e.denied,
      totalDenied: e.denied,
      mtls: e.mtls,
      waypoint: e.waypoint,
      protocol: http ? "http" : "tcp",
    });
  }
  return {
    nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
    edges: edges.sort((a, b) => a.id.localeCompare(b.id)),
    links: [...links.keys()].sort().map((k) => links.get(k)!),
    at: at.toISOString(),
  };
}

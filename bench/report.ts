// Results → BENCHMARKS.md and chart data (pure: tested on a fixture).
// Every table shows each peer's numbers and, per metric, the ratio to direct
// and to the reference HAProxy pair measured in the same run.
import type { PeerName } from "./peers/types.js";
import type { BenchResults, Cost } from "./results.js";
import { type BarChart, COLORS } from "./svg.js";

export const PEER_ORDER: readonly PeerName[] = [
  "direct",
  "ambit-l4",
  "ambit-waypoint",
  "haproxy-tcp",
  "haproxy-http",
];
/** The reference every "×ref" ratio divides by. */
export const REFERENCE: PeerName = "haproxy-tcp";

/** value / base, or undefined when either is missing or base is 0. */
export function ratio(value: number | undefined, base: number | undefined): number | undefined {
  if (
    value === undefined ||
    base === undefined ||
    !Number.isFinite(value) ||
    !Number.isFinite(base) ||
    base === 0
  ) {
    return undefined;
  }
  return value / base;
}

/** Difference value - base (e.g. latency added over direct). */
export function added(value: number | undefined, base: number | undefined): number | undefined {
  if (value === undefined || base === undefined || !Number.isFinite(value) || !Number.isFinite(base))
    return undefined;
  return value - base;
}

/** vCPU and MB of RSS per 1,000 requests per second, from a cost measured at `rps`. */
export function costPer1k(
  cost: Cost | undefined,
  rps: number | undefined,
): { vcpu: number; rssMB: number } | undefined {
  if (!cost || !rps || !(rps > 0) || cost.processes.length === 0) return undefined;
  return { vcpu: (cost.vcpu * 1000) / rps, rssMB: (cost.rssMB * 1000) / rps };
}

export interface Metric {
  label: string;
  get: (r: BenchResults, peer: PeerName) => number | undefined;
  digits: number;
  /** Show ratios for this metric (default true). */
  ratios?: boolean;
}

export interface MetricTable {
  title: string;
  metrics: Metric[];
  /** Only peers that take part in this scenario. */
  peers: (r: BenchResults) => PeerName[];
}

export function fmtNum(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtRatio(v: number | undefined): string {
  return v === undefined ? "–" : `${v.toFixed(2)}×`;
}

function peerLabel(r: BenchResults, peer: PeerName): string {
  const info = r.peers.find((p) => p.name === peer);
  return info?.label ?? peer;
}

/** Peers listed in the results (measured or not), in the report's order. */
export function listedPeers(r: BenchResults): PeerName[] {
  return PEER_ORDER.filter((p) => r.peers.some((x) => x.name === p));
}

function statusCell(r: BenchResults, peer: PeerName): string | undefined {
  const info = r.peers.find((p) => p.name === peer);
  if (!info || info.status === "measured") return undefined;
  return info.status === "failed" ? `failed: ${info.note ?? ""}` : `not yet measured: ${info.note ?? ""}`;
}

/** A markdown table of values, then one of ratios (×direct / ×ref) for the metrics that have them. */
export function renderMetricTable(r: BenchResults, t: MetricTable): string {
  const peers = t.peers(r);
  const lines: string[] = [];
  lines.push(`| peer | ${t.metrics.map((m) => m.label).join(" | ")} |`);
  lines.push(`|---|${t.metrics.map(() => "---:").join("|")}|`);
  for (const p of peers) {
    const status = statusCell(r, p);
    const cells = status
      ? [status, ...t.metrics.slice(1).map(() => "")]
      : t.metrics.map((m) => fmtNum(m.get(r, p), m.digits));
    lines.push(`| ${peerLabel(r, p)} | ${cells.join(" | ")} |`);
  }
  const withRatios = t.metrics.filter((m) => m.ratios !== false);
  if (withRatios.length) {
    lines.push("", `Ratios (peer ÷ direct / peer ÷ ${peerLabel(r, REFERENCE)}):`, "");
    lines.push(`| peer | ${withRatios.map((m) => m.label).join(" | ")} |`);
    lines.push(`|---|${withRatios.map(() => "---:").join("|")}|`);
    for (const p of peers) {
      if (statusCell(r, p)) continue;
      const cells = withRatios.map((m) => {
        const v = m.get(r, p);
        return `${fmtRatio(ratio(v, m.get(r, "direct")))} / ${fmtRatio(ratio(v, m.get(r, REFERENCE)))}`;
      });
      lines.push(`| ${peerLabel(r, p)} | ${cells.join(" | ")} |`);
    }
  }
  return `### ${t.title}\n\n${lines.join("\n")}\n`;
}

const l4Peers = (r: BenchResults) =>
  listedPeers(r).filter((p) => p !== "haproxy-http" && p !== "ambit-waypoint");

export const TABLES: MetricTable[] = [
  {
    title: "1. Latency: HTTP/1.1, 1 KB payload, fixed rate (ms)",
    peers: listedPeers,
    metrics: [
      { label: "p50", digits: 3, get: (r, p) => r.latency[p]?.p50 },
      { label: "p90", digits: 3, get: (r, p) => r.latency[p]?.p90 },
      { label: "p99", digits: 3, get: (r, p) => r.latency[p]?.p99 },
      { label: "p99.9", digits: 3, get: (r, p) => r.latency[p]?.p999 },
      {
        label: "added p99 over direct",
        digits: 3,
        ratios: false,
        get: (r, p) => added(r.latency[p]?.p99, r.latency.direct?.p99),
      },
      { label: "achieved rps", digits: 0, ratios: false, get: (r, p) => r.latency[p]?.actualQps },
      { label: "errors", digits: 0, ratios: false, get: (r, p) => r.latency[p]?.errors },
    ],
  },
  {
    title: "2. Cost at the fixed rate (all proxy processes of the path, both nodes)",
    peers: (r) => listedPeers(r).filter((p) => p !== "direct"),
    metrics: [
      {
        label: "vCPU per 1,000 rps",
        digits: 3,
        get: (r, p) => costPer1k(r.latency[p]?.cost, r.latency[p]?.actualQps)?.vcpu,
      },
      { label: "RSS MB (max)", digits: 1, get: (r, p) => r.latency[p]?.cost.rssMB },
      {
        label: "vCPU at saturation (keep-alive)",
        digits: 2,
        get: (r, p) => r.saturation[p]?.keepAliveCost?.vcpu,
      },
      {
        label: "vCPU per 1,000 rps at saturation",
        digits: 3,
        get: (r, p) => costPer1k(r.saturation[p]?.keepAliveCost, r.saturation[p]?.keepAlive?.rps)?.vcpu,
      },
    ],
  },
  {
    title: "3. Saturation: max rate and bulk TCP throughput",
    peers: listedPeers,
    metrics: [
      { label: "rps keep-alive", digits: 0, get: (r, p) => r.saturation[p]?.keepAlive?.rps },
      {
        label: "rps new connection per request",
        digits: 0,
        get: (r, p) => r.saturation[p]?.newConnection?.rps,
      },
      { label: "TCP 1 stream MB/s", digits: 1, get: (r, p) => r.saturation[p]?.tcp1MBps },
      { label: "TCP 8 streams MB/s", digits: 1, get: (r, p) => r.saturation[p]?.tcp8MBps },
    ],
  },
  {
    title: "4. gRPC unary (1 KB) and HTTP/2 multiplexed",
    peers: listedPeers,
    metrics: [
      { label: "gRPC rps", digits: 0, get: (r, p) => r.grpc[p]?.unary.actualQps },
      { label: "gRPC p50 ms", digits: 3, get: (r, p) => r.grpc[p]?.unary.p50 },
      { label: "gRPC p99 ms", digits: 3, get: (r, p) => r.grpc[p]?.unary.p99 },
      { label: "h2 rps", digits: 0, get: (r, p) => r.grpc[p]?.h2.rps },
    ],
  },
  {
    title: "5. Scale: idle tunnelled connections and connection setup rate",
    peers: l4Peers,
    metrics: [
      { label: "connections held", digits: 0, ratios: false, get: (r, p) => r.scale[p]?.opened },
      { label: "proxies' RSS MB idle", digits: 1, get: (r, p) => r.scale[p]?.rssIdleMB },
      {
        label: "KB per connection",
        digits: 1,
        get: (r, p) => {
          const s = r.scale[p];
          return s && s.opened > 0 && p !== "direct"
            ? ((s.rssIdleMB - s.rssBeforeMB) * 1024) / s.opened
            : undefined;
        },
      },
      { label: "setups per second", digits: 0, get: (r, p) => r.scale[p]?.setupRate },
    ],
  },
];

export function renderControlPlane(r: BenchResults): string {
  const cp = r.controlPlane;
  const head = "### 6. Control plane: delta xDS push to simulated ztunnels\n\n";
  if (cp.status !== "measured") return `${head}Not yet measured: ${cp.note ?? ""}\n`;
  const lines = [
    "| pods | subscribers | full push → all ACKed (ms) | one-pod change p50 (ms) | one-pod change max (ms) | server RSS MB |",
    "|---:|---:|---:|---:|---:|---:|",
    ...cp.runs.map(
      (x) =>
        `| ${fmtNum(x.pods, 0)} | ${x.subscribers} | ${fmtNum(x.fullPushMs, 1)} | ${fmtNum(x.incrementalP50Ms, 1)} | ${fmtNum(x.incrementalMaxMs, 1)} | ${fmtNum(x.serverRssMB, 1)} |`,
    ),
  ];
  return `${head}${lines.join("\n")}\n`;
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean | undefined;
}

/** The targets, reported (never asserted). */
export function targetChecks(r: BenchResults): TargetCheck[] {
  const out: TargetCheck[] = [];
  const check = (
    target: string,
    value: number | undefined,
    unit: string,
    ok: (v: number) => boolean,
    digits = 3,
  ) =>
    out.push({
      target,
      measured: value === undefined ? "not measured" : `${fmtNum(value, digits)}${unit}`,
      met: value === undefined ? undefined : ok(value),
    });
  const l4 = "ambit-l4" as const;
  check(
    "ambit L4 throughput (8 streams) ≥ HAProxy pair",
    ratio(r.saturation[l4]?.tcp8MBps, r.saturation[REFERENCE]?.tcp8MBps),
    "×",
    (v) => v >= 1,
    2,
  );
  check(
    "ambit L4 keep-alive rps ≥ HAProxy pair",
    ratio(r.saturation[l4]?.keepAlive?.rps, r.saturation[REFERENCE]?.keepAlive?.rps),
    "×",
    (v) => v >= 1,
    2,
  );
  const cpu = (p: PeerName) => costPer1k(r.latency[p]?.cost, r.latency[p]?.actualQps)?.vcpu;
  check("ambit L4 CPU per 1,000 rps ≤ HAProxy pair", ratio(cpu(l4), cpu(REFERENCE)), "×", (v) => v <= 1, 2);
  check(
    "ambit L4 added p99 at 1,000 rps ≤ 0.5 ms",
    added(r.latency[l4]?.p99, r.latency.direct?.p99),
    " ms",
    (v) => v <= 0.5,
  );
  const perZt = (f: (c: { vcpu: number; rssMB: number }) => number) => {
    const c = costPer1k(r.latency[l4]?.cost, r.latency[l4]?.actualQps);
    const n = r.latency[l4]?.cost.processes.length ?? 0;
    return c && n ? f(c) / n : undefined;
  };
  check(
    "ztunnel ≤ 0.1 vCPU per 1,000 rps",
    perZt((c) => c.vcpu),
    " vCPU",
    (v) => v <= 0.1,
  );
  check(
    "ztunnel ≤ 60 MB RSS per 1,000 rps",
    perZt((c) => c.rssMB),
    " MB",
    (v) => v <= 60,
    1,
  );
  const sc = r.scale[l4];
  const idleComparable = sc && sc.opened >= 10_000;
  check(
    "10,000 idle connections ≤ 150 MB RSS (per ztunnel)",
    idleComparable ? sc.rssIdleMB / 2 : undefined,
    " MB",
    (v) => v <= 150,
    1,
  );
  const wp = "ambit-waypoint" as const;
  check(
    "waypoint path added p99 ≤ 1.5 ms",
    added(r.latency[wp]?.p99, r.latency.direct?.p99),
    " ms",
    (v) => v <= 1.5,
  );
  check(
    "waypoint throughput ≥ 0.8× HAProxy HTTP mode",
    ratio(r.saturation[wp]?.keepAlive?.rps, r.saturation["haproxy-http"]?.keepAlive?.rps),
    "×",
    (v) => v >= 0.8,
    2,
  );
  const cp10k = r.controlPlane.runs.find((x) => x.pods === 10_000);
  check("control plane: 10,000 pods to 100 ztunnels < 1 s", cp10k?.fullPushMs, " ms", (v) => v < 1000, 0);
  const inc = r.controlPlane.runs.at(-1)?.incrementalP50Ms;
  check("control plane: one-pod change < 50 ms (p50, largest size)", inc, " ms", (v) => v < 50, 1);
  return out;
}

export function renderTargets(r: BenchResults): string {
  const rows = targetChecks(r).map(
    (t) => `| ${t.target} | ${t.measured} | ${t.met === undefined ? "–" : t.met ? "met" : "not met"} |`,
  );
  return `### Targets (reported, not asserted)\n\n| target | measured | |\n|---|---:|---|\n${rows.join("\n")}\n`;
}

/** Each peer keeps its colour in every chart. */
export function peerColor(p: PeerName): string {
  return COLORS[PEER_ORDER.indexOf(p) % COLORS.length] as string;
}

/** Chart data: latency percentiles per peer; CPU and memory per peer. */
export function charts(r: BenchResults): { latency: BarChart; cpu: BarChart; memory: BarChart } {
  const measured = listedPeers(r).filter((p) => r.latency[p]);
  const latency: BarChart = {
    title: `Latency at ${r.settings.latency.qps} rps, ${r.settings.latency.connections} connections, 1 KB (lower is better)`,
    unit: "ms",
    log: true,
    groups: ["p50", "p90", "p99", "p99.9"],
    series: measured.map((p) => {
      const l = r.latency[p];
      return { name: peerLabel(r, p), color: peerColor(p), values: [l?.p50, l?.p90, l?.p99, l?.p999] };
    }),
  };
  const proxied = listedPeers(r).filter(
    (p) => p !== "direct" && (r.latency[p] || r.saturation[p] || r.scale[p]),
  );
  const cpu: BarChart = {
    title: "Proxy CPU per 1,000 rps, both nodes (lower is better)",
    unit: "vCPU per 1,000 rps",
    groups: [`at ${r.settings.latency.qps} rps (fixed rate)`, "at saturation (wrk keep-alive)"],
    series: proxied.map((p) => ({
      name: peerLabel(r, p),
      color: peerColor(p),
      values: [
        costPer1k(r.latency[p]?.cost, r.latency[p]?.actualQps)?.vcpu,
        costPer1k(r.saturation[p]?.keepAliveCost, r.saturation[p]?.keepAlive?.rps)?.vcpu,
      ],
    })),
  };
  const memory: BarChart = {
    title: "Proxy memory (RSS), both nodes (lower is better)",
    unit: "MB",
    groups: [
      `at ${r.settings.latency.qps} rps`,
      `holding up to ${r.settings.scale.idleConnections.toLocaleString("en-US")} idle connections`,
    ],
    series: proxied.map((p) => ({
      name: peerLabel(r, p),
      color: peerColor(p),
      values: [r.latency[p]?.cost.rssMB, r.scale[p]?.rssIdleMB],
    })),
  };
  return { latency, cpu, memory };
}

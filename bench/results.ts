// The shape of bench/results/latest.json: everything BENCHMARKS.md is
// rendered from. Times in milliseconds, rates per second, sizes in MB (2^20).
import type { LatencyRun, RateRun } from "./load.js";
import type { PeerName } from "./peers/types.js";
import type { ProcessUsage } from "./sampler.js";

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGB: number;
  kernel: string;
  versions: Record<string, string>;
  /** os.loadavg() when the run started: other work sharing the cores. */
  loadAverage?: number[];
}

export interface Cost {
  processes: ProcessUsage[];
  /** Sum over the path's proxy processes. */
  vcpu: number;
  rssMB: number;
}

export interface PeerInfo {
  name: PeerName;
  label: string;
  status: "measured" | "not-measured" | "failed";
  note?: string;
}

export interface LatencyResult extends LatencyRun {
  cost: Cost;
}

export interface SaturationResult {
  keepAlive?: RateRun;
  newConnection?: RateRun;
  /** MB/s (10^6 bytes) received, one stream and eight. */
  tcp1MBps?: number;
  tcp8MBps?: number;
  /** Cost while saturated with keep-alive requests. */
  keepAliveCost?: Cost;
}

export interface GrpcResult {
  unary: LatencyRun;
  h2: RateRun;
}

export interface ScaleResult {
  requested: number;
  opened: number;
  errors: number;
  /** New tunnelled connections per second (each proven by a 1-byte echo). */
  setupRate: number;
  /** Proxies' RSS before and while holding the idle connections. */
  rssBeforeMB: number;
  rssIdleMB: number;
}

export interface ControlPlaneRun {
  pods: number;
  subscribers: number;
  /** From publish() of the full set to the last subscriber's ACK. */
  fullPushMs: number;
  /** One pod changed: publish to every subscriber's ACK. */
  incrementalP50Ms: number;
  incrementalMaxMs: number;
  serverRssMB: number;
}

export interface ControlPlaneResult {
  status: "measured" | "not-measured";
  note?: string;
  runs: ControlPlaneRun[];
}

export interface Settings {
  latency: { qps: number; connections: number; durationSec: number; payloadBytes: number };
  saturation: { connections: number; durationSec: number; threads: number; tcpDurationSec: number };
  grpc: { requests: number; connections: number; streamsPerConnection: number; h2Requests: number };
  scale: { idleConnections: number; setupConcurrency: number };
  controlPlane: { subscribers: number; pods: number[]; incrementalChanges: number };
}

export type PerPeer<T> = Partial<Record<PeerName, T>>;

export interface BenchResults {
  schema: 1;
  mode: "quick" | "full";
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: Settings;
  peers: PeerInfo[];
  latency: PerPeer<LatencyResult>;
  saturation: PerPeer<SaturationResult>;
  grpc: PerPeer<GrpcResult>;
  scale: PerPeer<ScaleResult>;
  controlPlane: ControlPlaneResult;
  /** Per peer and scenario, what failed (the run goes on). */
  errors: { peer?: PeerName; scenario: string; message: string }[];
}

export function sumCost(processes: ProcessUsage[]): Cost {
  return {
    processes,
    vcpu: processes.reduce((a, p) => a + p.vcpu, 0),
    rssMB: processes.reduce((a, p) => a + p.rssMaxMB, 0),
  };
}

// The benchmark's one config module: flags → settings. `--quick` is the CI
// smoke (about a minute: proves the harness and every tool work, asserts no
// timing); the full run follows Istio's published method and fits in 20 min.

import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AmbitError } from "../core/errors/errors.js";
import type { PeerName } from "./peers/types.js";
import type { Settings } from "./results.js";

export interface BenchConfig {
  mode: "quick" | "full";
  settings: Settings;
  /** Only these peers (default: all). */
  peers?: PeerName[];
  /** Only these scenarios (default: all). */
  scenarios: Set<ScenarioName>;
  /** Where latest.json goes; BENCHMARKS.md is rewritten only by full runs unless --report. */
  resultsPath: string;
  writeReport: boolean;
  keepWorkDir: boolean;
}

export const SCENARIOS = ["latency", "saturation", "grpc", "scale", "control-plane"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const FULL: Settings = {
  latency: { qps: 1000, connections: 16, durationSec: 60, payloadBytes: 1024 },
  saturation: { connections: 64, durationSec: 15, threads: 2, tcpDurationSec: 10 },
  grpc: { requests: 10_000, connections: 4, streamsPerConnection: 25, h2Requests: 50_000 },
  scale: { idleConnections: 10_000, setupConcurrency: 64 },
  controlPlane: { subscribers: 100, pods: [100, 1000, 10_000], incrementalChanges: 20 },
};

export const QUICK: Settings = {
  latency: { qps: 200, connections: 4, durationSec: 2, payloadBytes: 1024 },
  saturation: { connections: 16, durationSec: 1, threads: 1, tcpDurationSec: 2 },
  grpc: { requests: 500, connections: 2, streamsPerConnection: 10, h2Requests: 1000 },
  scale: { idleConnections: 100, setupConcurrency: 32 },
  controlPlane: { subscribers: 5, pods: [100], incrementalChanges: 3 },
};

const USAGE = `usage: npm run bench -- [--quick] [--peers a,b] [--scenarios s1,s2] [--out FILE] [--report] [--keep]
  --quick       ~1 minute smoke (CI): every tool and peer runs briefly, nothing is asserted about timing
  --peers       direct, ambit-l4, ambit-waypoint, haproxy-tcp, haproxy-http
  --scenarios   ${SCENARIOS.join(", ")}
  --out         results JSON (default bench/results/latest.json; --quick: $TMPDIR/ambit-bench-quick.json)
  --report      rewrite BENCHMARKS.md and the charts from this run (default for full runs)
  --no-report   a full-length run that leaves BENCHMARKS.md and the charts alone (profiling)
  --keep        keep the work directory (configs, certificates, proxy logs)
example: npm run bench -- --quick --peers direct,haproxy-tcp`;

const PEERS: readonly PeerName[] = ["direct", "ambit-l4", "ambit-waypoint", "haproxy-tcp", "haproxy-http"];

export function parseArgs(argv: readonly string[], repoRoot: string): BenchConfig | "help" {
  let quick = false;
  let peers: PeerName[] | undefined;
  let scenarios = new Set<ScenarioName>(SCENARIOS);
  let out: string | undefined;
  let report: boolean | undefined;
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new AmbitError("CONFIG", `bench: flag ${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--quick") quick = true;
    else if (a === "--peers") {
      peers = value().split(",") as PeerName[];
      const bad = peers.find((p) => !PEERS.includes(p));
      if (bad)
        throw new AmbitError(
          "CONFIG",
          `bench: flag --peers: unknown peer '${bad}' (one of ${PEERS.join(", ")})`,
        );
    } else if (a === "--scenarios") {
      const list = value().split(",") as ScenarioName[];
      const bad = list.find((s) => !SCENARIOS.includes(s));
      if (bad) throw new AmbitError("CONFIG", `bench: flag --scenarios: unknown scenario '${bad}'`);
      scenarios = new Set(list);
    } else if (a === "--out") out = value();
    else if (a === "--report") report = true;
    else if (a === "--no-report") report = false;
    else if (a === "--keep") keep = true;
    else if (a === "--help" || a === "-h") return "help";
    else throw new AmbitError("CONFIG", `bench: unknown flag '${a}'\n${USAGE}`);
  }
  return {
    mode: quick ? "quick" : "full",
    settings: quick ? QUICK : FULL,
    peers,
    scenarios,
    // A quick run never touches the committed results.
    resultsPath:
      out ?? (quick ? join(tmpdir(), "ambit-bench-quick.json") : join(repoRoot, "bench/results/latest.json")),
    writeReport: report ?? !quick,
    keepWorkDir: keep,
  };
}

export { USAGE };

/** The repository root: the nearest parent of this module holding package.json (dist/bench/ → the repo). */
export function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

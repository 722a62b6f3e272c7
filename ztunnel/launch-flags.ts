// The node (V8) flags every ztunnel process runs with, in one place: the
// local supervisor (`ambit up`), the benchmark and soak harness put them on
// node's command line; the DaemonSet (manifests/install/ztunnel.yaml) carries
// the same list in NODE_OPTIONS, and a unit test keeps the two equal. They
// cannot be set from inside the process: V8 sizes its heap before any of our
// code runs.

/**
 * Why each flag (measured in bench/PROFILING.md, section s3-rss):
 * - `--max-semi-space-size=1`: the young generation grows to 16 MB per
 *   semi-space (48 MB of RSS) during a burst of connection setups and keeps
 *   that memory. ztunnel's allocations are short-lived per-chunk buffers and
 *   per-connection objects that survive; a 1 MB semi-space scavenges more
 *   often, each scavenge being cheap.
 * - `--max-old-space-size=512`: a guard well under the DaemonSet's 1 GiB
 *   limit, so a leak ends in a V8 out-of-memory with a stack rather than an
 *   OOM kill, and V8 collects harder as it gets near.
 */
export const ZTUNNEL_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--max-old-space-size=512"];

/**
 * The flags to launch a ztunnel with: AMBIT_ZTUNNEL_NODE_FLAGS (space
 * separated, empty for none) replaces the defaults when set, for experiments
 * (the benchmark's before/after) (pure).
 */
export function ztunnelNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return nodeFlagsOrOverride(ZTUNNEL_NODE_FLAGS, env.AMBIT_ZTUNNEL_NODE_FLAGS);
}

/**
 * A component's node flags: `override` (space separated, empty for none)
 * replaces the defaults when set (pure; the waypoint's launch-flags.ts uses
 * it too).
 */
export function nodeFlagsOrOverride(defaults: readonly string[], override: string | undefined): string[] {
  if (override === undefined) return [...defaults];
  return override.split(/\s+/).filter((f) => f.length > 0);
}

/** NODE_OPTIONS value carrying the flags (for launchers that cannot change node's argv: the container image). */
export function ztunnelNodeOptions(): string {
  return ZTUNNEL_NODE_FLAGS.join(" ");
}

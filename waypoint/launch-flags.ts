// The waypoint's node (V8) flags, as ztunnel/launch-flags.ts is for the
// ztunnel. None by default (below), so only the benchmark applies them today,
// to A/B candidates through AMBIT_WAYPOINT_NODE_FLAGS; a default added here
// must also reach `ambit up` and the waypoint deployer, as ztunnel's do.
// They cannot be set from inside the process: V8 sizes its heap first.
import { nodeFlagsOrOverride } from "../ztunnel/launch-flags.js";

/**
 * None by default, measured (bench/PROFILING.md, s4-wp4): ztunnel's small
 * young generation (`--max-semi-space-size=1`) promotes the waypoint's
 * in-flight request objects early (15x the scavenges, 10x the
 * mark-compacts) and costs 8-55% more CPU per request; 4 MB is in between,
 * 32 MB no better than the default.
 */
export const WAYPOINT_NODE_FLAGS: readonly string[] = [];

/**
 * The flags to launch a waypoint with: AMBIT_WAYPOINT_NODE_FLAGS (space
 * separated, empty for none) replaces the defaults when set, for experiments
 * (the benchmark's before/after) (pure).
 */
export function waypointNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return nodeFlagsOrOverride(WAYPOINT_NODE_FLAGS, env.AMBIT_WAYPOINT_NODE_FLAGS);
}

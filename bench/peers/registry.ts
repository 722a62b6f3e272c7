// Every peer the harness knows, in the order they are measured. ambit's peers
// go last: their capture rules are cleared when they stop, but nothing that
// runs before them can be affected by a leftover.
import { ambitL4Peer } from "./ambit.js";
import { ambitWaypointPeer } from "./ambit-waypoint.js";
import { directPeer } from "./direct.js";
import { haproxyHttpPeer, haproxyTcpPeer } from "./haproxy.js";
import type { Peer } from "./types.js";

export function allPeers(): Peer[] {
  return [directPeer, haproxyTcpPeer, haproxyHttpPeer, ambitL4Peer, ambitWaypointPeer];
}

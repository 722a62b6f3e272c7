// Every peer the harness knows, in the order they are measured and reported.
import { ambitL4Peer, ambitWaypointPeer } from "./ambit.js";
import { directPeer } from "./direct.js";
import { haproxyHttpPeer, haproxyTcpPeer } from "./haproxy.js";
import type { Peer } from "./types.js";

export function allPeers(): Peer[] {
  return [directPeer, ambitL4Peer, ambitWaypointPeer, haproxyTcpPeer, haproxyHttpPeer];
}

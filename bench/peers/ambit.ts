// Peers (b) and (c): ambit's own data path.
import type { Peer } from "./types.js";

export const ambitL4Peer: Peer = {
  name: "ambit-l4",
  label: "ambit L4 (2 ztunnels, HBONE)",
  l7: false,
  unavailable: async () => "the ztunnel data path is not wired yet",
  start: async () => {
    throw new Error("ambit-l4: not available");
  },
};

export const ambitWaypointPeer: Peer = {
  name: "ambit-waypoint",
  label: "ambit L4 + waypoint",
  l7: true,
  unavailable: async () => "the waypoint is not built yet",
  start: async () => {
    throw new Error("ambit-waypoint: not available");
  },
};

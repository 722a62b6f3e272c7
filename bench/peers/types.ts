// What a peer is to the harness: something started on the topology that gives
// the client pod an address for each application port, and names the proxy
// processes whose CPU and memory are the cost of the path.

import type { MeshNetwork } from "../../local/mesh-network.js";
import type { PairCerts } from "../certs.js";
import type { Measured } from "../sampler.js";
import type { Topology } from "../topology.js";

export type PeerName = "direct" | "ambit-l4" | "ambit-waypoint" | "haproxy-tcp" | "haproxy-http";

export interface Addr {
  ip: string;
  port: number;
}

/** Application ports served in the server pod. */
export const APP_PORTS = { http: 8080, grpc: 8079, tcpEcho: 8078, iperf: 5201 } as const;
export type AppPort = keyof typeof APP_PORTS;

export type Targets = Record<AppPort, Addr>;

export interface PeerContext {
  topo: Topology;
  workDir: string;
  certs: PairCerts;
  /** Root of the repository (dist/ lives there). */
  repoRoot: string;
  /** The live mesh network (to add pods a peer needs). */
  mesh: MeshNetwork;
  /** The fortio binary (also the harness's HTTP probe inside namespaces). */
  fortio: string;
}

export interface PeerRuntime {
  targets: Targets;
  /** Proxy processes on the path (empty for direct). */
  measured: Measured[];
  close(): Promise<void>;
}

export interface Peer {
  name: PeerName;
  label: string;
  /** Carries HTTP at L7 (HTTP scenarios only; bulk TCP and idle connections are L4 scenarios). */
  l7: boolean;
  /** Most connections it can carry at once here (open-file limit), when lower than the scenario asks. */
  maxConnections?: number;
  /** Why this peer cannot run here, or undefined when it can. */
  unavailable(ctx: PeerContext): Promise<string | undefined>;
  start(ctx: PeerContext): Promise<PeerRuntime>;
}

export function directTargets(topo: Topology): Targets {
  const ip = topo.serverPod.ip;
  return {
    http: { ip, port: APP_PORTS.http },
    grpc: { ip, port: APP_PORTS.grpc },
    tcpEcho: { ip, port: APP_PORTS.tcpEcho },
    iperf: { ip, port: APP_PORTS.iperf },
  };
}

// The benchmark's network, built with the project's own local mesh network
// (local/mesh-network.ts, the same one `ambit up` uses): a fabric bridge, a
// control-plane namespace, two nodes and one pod on each. Its mesh id is
// b<random>, so every namespace is named ambit-b<random>-*, and it is always
// removed. Nothing is routed to or from the host's namespace: the addresses
// exist only inside these namespaces.
//
//   client pod ── node-1 ──┐ fabric bridge ┌── node-2 ── server pod
//                          └── control plane (controller) ┘
import { randomBytes } from "node:crypto";
import { MeshNetwork } from "../local/mesh-network.js";
import { destroyMeshNetwork, listNetns, type MeshLayout, meshLayout, podNetwork } from "../local/network.js";
import { run } from "./procs.js";

export interface NodePlan {
  name: string;
  netns: string;
  /** Address on the fabric (node to node). */
  linkIp: string;
  /** The node's address facing its pods (their gateway). */
  podGatewayIp: string;
}

export interface PodPlan {
  /** "namespace/name". */
  key: string;
  netns: string;
  netnsPath: string;
  ip: string;
  node: NodePlan;
}

export interface Topology {
  meshId: string;
  prefix: string;
  layout: MeshLayout;
  controlPlane: { netns: string; ip: string };
  clientNode: NodePlan;
  serverNode: NodePlan;
  clientPod: PodPlan;
  serverPod: PodPlan;
}

export const BENCH_NAMESPACE = "bench";

export function randomMeshId(): string {
  return `b${randomBytes(3).toString("hex")}`;
}

/** Names and addresses of the benchmark's mesh (pure). */
export function planTopology(meshId: string): Topology {
  const layout = meshLayout({ meshId, nodes: ["node-1", "node-2"] });
  const [n1, n2] = layout.nodes;
  if (!n1 || !n2) throw new Error("mesh layout without two nodes");
  const node = (n: typeof n1): NodePlan => ({
    name: n.name,
    netns: n.netns,
    linkIp: n.ip,
    podGatewayIp: n.podGateway,
  });
  const clientNode = node(n1);
  const serverNode = node(n2);
  const pod = (name: string, n: typeof n1, nodePlan: NodePlan): PodPlan => {
    const ip = `${n.podGateway.slice(0, n.podGateway.lastIndexOf("."))}.2`;
    const net = podNetwork(layout, { key: `${BENCH_NAMESPACE}/${name}`, node: n.name, ip });
    return { key: net.key, netns: net.netns, netnsPath: net.netnsPath, ip: net.ip, node: nodePlan };
  };
  return {
    meshId,
    prefix: layout.prefix,
    layout,
    controlPlane: { netns: layout.controlPlane.netns, ip: layout.controlPlane.ip },
    clientNode,
    serverNode,
    clientPod: pod("client", n1, clientNode),
    serverPod: pod("server", n2, serverNode),
  };
}

/** Kernel settings for tens of thousands of short and idle connections, per namespace (pure). */
export function tuningSteps(t: Topology): string[][] {
  const steps: string[][] = [];
  for (const ns of [t.clientPod.netns, t.clientNode.netns, t.serverNode.netns, t.serverPod.netns]) {
    steps.push(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"]);
    steps.push(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"]);
  }
  return steps;
}

/** Builds the mesh network, both pods and the tuning; on failure removes what was made. */
export async function applyTopology(t: Topology): Promise<MeshNetwork> {
  const mesh = await MeshNetwork.create({ meshId: t.meshId, nodes: t.layout.nodes.map((n) => n.name) });
  try {
    await mesh.addPod({ key: t.clientPod.key, node: t.clientNode.name, ip: t.clientPod.ip });
    await mesh.addPod({ key: t.serverPod.key, node: t.serverNode.name, ip: t.serverPod.ip });
    for (const [cmd, ...args] of tuningSteps(t)) await run(cmd as string, args);
  } catch (err) {
    await removeTopology(t.meshId);
    throw err;
  }
  return mesh;
}

/** Removes every namespace of the benchmark's mesh (ending the processes left inside). */
export async function removeTopology(meshId: string): Promise<string[]> {
  const removed = await destroyMeshNetwork(meshId, { graceMs: 2000 }).catch(() => [] as string[]);
  // Belt and braces: whatever is still named like ours.
  for (const ns of listNetns(`ambit-${meshId}-`)) await run("ip", ["netns", "del", ns], { allowFail: true });
  return removed;
}

// The benchmark's network: two nodes and one pod on each, all network
// namespaces the harness creates (prefix ambit-b<random>-) and always
// removes. Isolated from the host: nothing here is routed to or from the root
// namespace, so the addresses below exist only inside these namespaces.
//
//   client pod ──veth── client node ──veth── server node ──veth── server pod
//   10.77.1.2        10.77.1.1 | 10.77.0.1   10.77.0.2 | 10.77.2.1    10.77.2.2
//
// The plan is plain data (tested); apply() runs it with `ip`.
import { randomBytes } from "node:crypto";
import { run } from "./procs.js";

export interface NodePlan {
  netns: string;
  /** Address on the node-to-node link. */
  linkIp: string;
  /** Address facing its pod (the pod's gateway). */
  podGatewayIp: string;
  podCidr: string;
}

export interface PodPlan {
  netns: string;
  ip: string;
  node: NodePlan;
}

export interface Topology {
  prefix: string;
  clientNode: NodePlan;
  serverNode: NodePlan;
  clientPod: PodPlan;
  serverPod: PodPlan;
  /** Every namespace, in creation order. */
  namespaces: string[];
}

/** One shell step: argv for `ip`, or a command run inside a namespace. */
export type Step = { ip: string[] } | { netns: string; cmd: string[] };

export function randomPrefix(): string {
  return `ambit-b${randomBytes(3).toString("hex")}-`;
}

export function planTopology(prefix: string): Topology {
  const clientNode: NodePlan = {
    netns: `${prefix}n1`,
    linkIp: "10.77.0.1",
    podGatewayIp: "10.77.1.1",
    podCidr: "10.77.1.0/24",
  };
  const serverNode: NodePlan = {
    netns: `${prefix}n2`,
    linkIp: "10.77.0.2",
    podGatewayIp: "10.77.2.1",
    podCidr: "10.77.2.0/24",
  };
  const clientPod: PodPlan = { netns: `${prefix}cli`, ip: "10.77.1.2", node: clientNode };
  const serverPod: PodPlan = { netns: `${prefix}srv`, ip: "10.77.2.2", node: serverNode };
  return {
    prefix,
    clientNode,
    serverNode,
    clientPod,
    serverPod,
    namespaces: [clientNode.netns, serverNode.netns, clientPod.netns, serverPod.netns],
  };
}

/** The steps that build a planned topology, in order. */
export function topologySteps(t: Topology): Step[] {
  const steps: Step[] = [];
  for (const ns of t.namespaces) {
    steps.push({ ip: ["netns", "add", ns] });
    steps.push({ netns: ns, cmd: ["ip", "link", "set", "lo", "up"] });
  }
  const veth = (aNs: string, aIf: string, aIp: string, bNs: string, bIf: string, bIp: string) => {
    steps.push({ ip: ["link", "add", aIf, "netns", aNs, "type", "veth", "peer", "name", bIf, "netns", bNs] });
    steps.push({ netns: aNs, cmd: ["ip", "addr", "add", `${aIp}/24`, "dev", aIf] });
    steps.push({ netns: bNs, cmd: ["ip", "addr", "add", `${bIp}/24`, "dev", bIf] });
    steps.push({ netns: aNs, cmd: ["ip", "link", "set", aIf, "up"] });
    steps.push({ netns: bNs, cmd: ["ip", "link", "set", bIf, "up"] });
  };
  const { clientNode: n1, serverNode: n2, clientPod: cp, serverPod: sp } = t;
  veth(n1.netns, "peer0", n1.linkIp, n2.netns, "peer0", n2.linkIp);
  veth(n1.netns, "pod0", n1.podGatewayIp, cp.netns, "eth0", cp.ip);
  veth(n2.netns, "pod0", n2.podGatewayIp, sp.netns, "eth0", sp.ip);
  for (const n of [n1, n2]) steps.push({ netns: n.netns, cmd: ["sysctl", "-qw", "net.ipv4.ip_forward=1"] });
  steps.push({ netns: n1.netns, cmd: ["ip", "route", "add", n2.podCidr, "via", n2.linkIp] });
  steps.push({ netns: n2.netns, cmd: ["ip", "route", "add", n1.podCidr, "via", n1.linkIp] });
  steps.push({ netns: cp.netns, cmd: ["ip", "route", "add", "default", "via", n1.podGatewayIp] });
  steps.push({ netns: sp.netns, cmd: ["ip", "route", "add", "default", "via", n2.podGatewayIp] });
  // The load generators open tens of thousands of connections.
  for (const ns of [cp.netns, n1.netns, n2.netns]) {
    steps.push({ netns: ns, cmd: ["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"] });
    steps.push({ netns: ns, cmd: ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"] });
  }
  return steps;
}

function runStep(s: Step) {
  return "ip" in s ? run("ip", s.ip) : run("ip", ["netns", "exec", s.netns, ...s.cmd]);
}

/** Builds the topology; on any failure removes what was made and rethrows. */
export async function applyTopology(t: Topology): Promise<void> {
  try {
    for (const s of topologySteps(t)) await runStep(s);
  } catch (err) {
    await removeTopology(t.prefix);
    throw err;
  }
}

/** Removes every namespace whose name starts with prefix (their veths go with them). */
export async function removeTopology(prefix: string): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"], { allowFail: true });
  const ours = stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(prefix) && prefix.length > 8);
  for (const ns of ours) await run("ip", ["netns", "del", ns], { allowFail: true });
  return ours;
}

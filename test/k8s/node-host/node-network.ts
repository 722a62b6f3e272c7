// The test nodes' network (pure plans; applied with local/network.ts's applySteps).
//
//   host netns:   veth `<hostIf>` 10.211.X.1/24 — the API server binds here
//        │
//   fabric netns `ambit-t<id>-fabric`: bridge br0 (the inter-node link; tcpdump it)
//        ├── node netns `ambit-t<id>-node1`  eth0 10.211.X.11/24
//        └── node netns `ambit-t<id>-node2`  eth0 10.211.X.12/24
//
// A node forwards, routes every other node's podCIDR via that node, and
// masquerades its pods' traffic that leaves the cluster CIDR (to the API
// server on the host), as ip-masq-agent would. Pods sit on the node's CNI
// bridge (set up by the bridge plugin, not here).
import type { NetworkStep } from "../../../local/network.js";

export const NETNS_DIR = "/var/run/netns";

export interface FabricLayout {
  id: string;
  prefix: string;
  netns: string;
  netnsPath: string;
  /** /24 of the fabric, e.g. 10.211.7.0/24. */
  cidr: string;
  /** The host's address on the fabric (the API server's bind address). */
  hostIp: string;
  /** The host side of the veth (host netns; at most 15 characters). */
  hostIf: string;
}

export interface NodeNetLayout {
  name: string;
  index: number;
  netns: string;
  netnsPath: string;
  ip: string;
}

/** Names and addresses (pure). `subnet` is the fabric's third octet. */
export function fabricLayout(id: string, subnet: number): FabricLayout {
  const prefix = `ambit-t${id}-`;
  return {
    id,
    prefix,
    netns: `${prefix}fabric`,
    netnsPath: `${NETNS_DIR}/${prefix}fabric`,
    cidr: `10.211.${subnet}.0/24`,
    hostIp: `10.211.${subnet}.1`,
    hostIf: `at${id}h`.slice(0, 15),
  };
}

export function nodeNetLayout(f: FabricLayout, name: string, index: number): NodeNetLayout {
  const base = f.hostIp.slice(0, f.hostIp.lastIndexOf("."));
  return {
    name,
    index,
    netns: `${f.prefix}${name}`,
    netnsPath: `${NETNS_DIR}/${f.prefix}${name}`,
    ip: `${base}.${11 + index}`,
  };
}

export function planFabric(f: FabricLayout): NetworkStep[] {
  return [
    ["ip", "netns", "add", f.netns],
    ["ip", "-n", f.netns, "link", "set", "lo", "up"],
    ["ip", "-n", f.netns, "link", "add", "br0", "type", "bridge"],
    ["ip", "-n", f.netns, "link", "set", "br0", "up"],
    ["ip", "link", "add", f.hostIf, "type", "veth", "peer", "name", "host", "netns", f.netns],
    ["ip", "-n", f.netns, "link", "set", "host", "master", "br0"],
    ["ip", "-n", f.netns, "link", "set", "host", "up"],
    ["ip", "addr", "add", `${f.hostIp}/24`, "dev", f.hostIf],
    ["ip", "link", "set", f.hostIf, "up"],
  ];
}

export function planNode(f: FabricLayout, n: NodeNetLayout): NetworkStep[] {
  const fabricIf = `n${n.index}`;
  return [
    ["ip", "netns", "add", n.netns],
    ["ip", "-n", n.netns, "link", "set", "lo", "up"],
    ["ip", "-n", n.netns, "link", "add", "eth0", "type", "veth", "peer", "name", fabricIf, "netns", f.netns],
    ["ip", "-n", f.netns, "link", "set", fabricIf, "master", "br0"],
    ["ip", "-n", f.netns, "link", "set", fabricIf, "up"],
    ["ip", "-n", n.netns, "addr", "add", `${n.ip}/24`, "dev", "eth0"],
    ["ip", "-n", n.netns, "link", "set", "eth0", "up"],
    ["nsenter", `--net=${n.netnsPath}`, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
  ];
}

/** Routes to the other nodes' pods and the masquerade of traffic leaving the cluster CIDR (pure). */
export function planNodeRoutes(
  n: NodeNetLayout,
  podCidr: string,
  clusterCidr: string,
  serviceCidr: string,
  others: { ip: string; podCidr: string }[],
): NetworkStep[] {
  const steps: NetworkStep[] = others.map((o) => [
    "ip",
    "-n",
    n.netns,
    "route",
    "replace",
    o.podCidr,
    "via",
    o.ip,
  ]);
  // Host-network processes need a route to the Service CIDR before nat
  // OUTPUT rewrites the destination. On-link on the fabric: a packet to an
  // address no rule rewrites gets no ARP answer and goes nowhere (no dummy
  // device: its module may not be loadable here).
  steps.push(["ip", "-n", n.netns, "route", "replace", serviceCidr, "dev", "eth0"]);
  const script = [
    "iptables-restore -w 5 --noflush <<'AMBIT_RULES'",
    "*nat",
    ":AMBIT-MASQ - [0:0]",
    `-A AMBIT-MASQ -s ${podCidr} ! -d ${clusterCidr} -j MASQUERADE`,
    // A Service hop that comes back to a pod on this bridge (hairpin): the
    // reply must pass through this namespace to be un-DNATed.
    `-A AMBIT-MASQ -s ${podCidr} -d ${podCidr} -m conntrack --ctstate DNAT -j MASQUERADE`,
    "COMMIT",
    "AMBIT_RULES",
    "iptables -w 5 -t nat -C POSTROUTING -j AMBIT-MASQ 2>/dev/null || iptables -w 5 -t nat -A POSTROUTING -j AMBIT-MASQ",
  ].join("\n");
  steps.push(["nsenter", `--net=${n.netnsPath}`, "sh", "-ec", script]);
  return steps;
}

/** Removes the host's veth (its peer goes with it) and every namespace (pure). */
export function planTeardown(f: FabricLayout, netns: string[]): NetworkStep[] {
  return [
    ["sh", "-c", `ip link del ${f.hostIf} 2>/dev/null || true`],
    ...netns.map((n) => ["sh", "-c", `ip netns del ${n} 2>/dev/null || true`] as NetworkStep),
  ];
}

// The local mesh's network: nodes and pods as Linux network namespaces.
//
//   fabric netns: bridge br0 10.213.0.1/24
//     ├── control plane netns  eth0 10.213.0.2/24
//     ├── node i netns         eth0 10.213.0.(10+i)/24, forwards; routes the
//     │     │                  other nodes' pod /24s via their node IPs
//     │     └── pod netns      eth0 10.213.(i+1).h/32, default via 10.213.(i+1).1;
//     │                        the node holds 10.213.(i+1).1/32 on its side of
//     │                        the pod's veth and a /32 route to the pod
//
// Every namespace is named `ambit-<meshId>-...`, and every interface is
// created directly inside its namespace (`ip -n`), so the host's own
// namespace is never touched and `destroyMeshNetwork` removes exactly what
// was made. Interface names live per namespace, so they stay short.
//
// Plans are lists of argv (pure); applySteps runs them through one shell.
import fs from "node:fs";
import { AmbitError } from "../core/errors/errors.js";
import { runCommand } from "../ztunnel/node-agent/command.js";

export const NETNS_DIR = "/var/run/netns";
const FABRIC_PREFIX = "10.213";
const MAX_NODES = 200;

export interface MeshNetworkSpec {
  /** 1-12 chars of [a-z0-9]; names every namespace `ambit-<meshId>-...`. */
  meshId: string;
  /** Node names (Kubernetes `spec.nodeName` values), in order. */
  nodes: string[];
}

export interface NodeLayout {
  name: string;
  /** 0-based position; decides the addresses. */
  index: number;
  netns: string;
  netnsPath: string;
  /** On the fabric bridge. */
  ip: string;
  /** The node's pods' /24. */
  podCidr: string;
  /** The node's address on every pod veth (pods' default gateway). */
  podGateway: string;
}

export interface MeshLayout {
  meshId: string;
  prefix: string;
  fabric: { netns: string; netnsPath: string; ip: string; cidr: string };
  controlPlane: { netns: string; netnsPath: string; ip: string };
  nodes: NodeLayout[];
}

export interface PodNetwork {
  /** "namespace/name". */
  key: string;
  node: string;
  netns: string;
  netnsPath: string;
  ip: string;
  /** Name of the pod's veth inside the node's namespace. */
  nodeIf: string;
}

export type NetworkStep = readonly string[];

export function validateMeshId(meshId: string): void {
  if (!/^[a-z0-9]{1,12}$/.test(meshId)) {
    throw new AmbitError("INVALID_FIELD", `mesh id '${meshId}': use 1-12 characters of [a-z0-9]`);
  }
}

export function meshPrefix(meshId: string): string {
  return `ambit-${meshId}-`;
}

/** Addresses and names for a mesh (pure). */
export function meshLayout(spec: MeshNetworkSpec): MeshLayout {
  validateMeshId(spec.meshId);
  if (spec.nodes.length === 0 || spec.nodes.length > MAX_NODES) {
    throw new AmbitError("INVALID_FIELD", `mesh ${spec.meshId}: nodes: between 1 and ${MAX_NODES} nodes`);
  }
  const seen = new Set<string>();
  for (const n of spec.nodes) {
    if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(n)) {
      throw new AmbitError(
        "INVALID_FIELD",
        `node '${n}': a node name is a DNS label (lowercase letters, digits, '-', '.')`,
      );
    }
    if (seen.has(n)) throw new AmbitError("INVALID_FIELD", `node '${n}': listed twice`);
    seen.add(n);
  }
  const prefix = meshPrefix(spec.meshId);
  const ns = (name: string) => ({ netns: `${prefix}${name}`, netnsPath: `${NETNS_DIR}/${prefix}${name}` });
  return {
    meshId: spec.meshId,
    prefix,
    fabric: { ...ns("fabric"), ip: `${FABRIC_PREFIX}.0.1`, cidr: `${FABRIC_PREFIX}.0.0/24` },
    controlPlane: { ...ns("cp"), ip: `${FABRIC_PREFIX}.0.2` },
    nodes: spec.nodes.map((name, index) => ({
      name,
      index,
      ...ns(`n-${name}`),
      ip: `${FABRIC_PREFIX}.0.${10 + index}`,
      podCidr: `${FABRIC_PREFIX}.${index + 1}.0/24`,
      podGateway: `${FABRIC_PREFIX}.${index + 1}.1`,
    })),
  };
}

/** Creates the fabric, the control plane namespace and the nodes (pure plan). */
export function planMeshNetwork(layout: MeshLayout): NetworkStep[] {
  const f = layout.fabric.netns;
  const steps: NetworkStep[] = [
    ["ip", "netns", "add", f],
    ["ip", "-n", f, "link", "set", "lo", "up"],
    ["ip", "-n", f, "link", "add", "br0", "type", "bridge"],
    ["ip", "-n", f, "addr", "add", `${layout.fabric.ip}/24`, "dev", "br0"],
    ["ip", "-n", f, "link", "set", "br0", "up"],
  ];
  const attach = (netns: string, fabricIf: string, ip: string) => {
    steps.push(
      ["ip", "netns", "add", netns],
      ["ip", "-n", netns, "link", "set", "lo", "up"],
      ["ip", "-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", fabricIf, "netns", f],
      ["ip", "-n", f, "link", "set", fabricIf, "master", "br0"],
      ["ip", "-n", f, "link", "set", fabricIf, "up"],
      ["ip", "-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"],
      ["ip", "-n", netns, "link", "set", "eth0", "up"],
    );
  };
  attach(layout.controlPlane.netns, "cp", layout.controlPlane.ip);
  for (const node of layout.nodes)
    steps.push(["ip", "-n", layout.controlPlane.netns, "route", "replace", node.podCidr, "via", node.ip]);
  for (const node of layout.nodes) {
    attach(node.netns, `n${node.index}`, node.ip);
    // /proc/sys/net shows the writer's namespace; plain sh, so no procps needed.
    steps.push(["nsenter", `--net=${node.netnsPath}`, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    for (const other of layout.nodes) {
      if (other !== node)
        steps.push(["ip", "-n", node.netns, "route", "replace", other.podCidr, "via", other.ip]);
    }
  }
  return steps;
}

/** A namespace name for a pod: `ambit-<id>-p-<ns>.<name>`, shortened with a hash when very long. */
export function podNetnsName(layout: MeshLayout, key: string): string {
  const flat = key.replace(/\//g, ".").replace(/[^A-Za-z0-9._-]/g, "_");
  const name = `${layout.prefix}p-${flat}`;
  if (name.length <= 200) return name;
  let h = 0;
  for (const c of key) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return `${name.slice(0, 190)}-${h.toString(16)}`;
}

/** The lowest free pod address of the node (pure); throws when the node's /24 is full. */
export function allocatePodIp(node: NodeLayout, used: Iterable<string>): string {
  const taken = new Set(used);
  const base = node.podGateway.slice(0, node.podGateway.lastIndexOf("."));
  for (let h = 2; h <= 254; h++) {
    const ip = `${base}.${h}`;
    if (!taken.has(ip)) return ip;
  }
  throw new AmbitError("INVALID_FIELD", `node ${node.name}: no free pod address left in ${node.podCidr}`);
}

/** Names and addresses of one pod (pure). `ip` must be inside the node's pod /24. */
export function podNetwork(layout: MeshLayout, pod: { key: string; node: string; ip: string }): PodNetwork {
  const node = nodeOf(layout, pod.node);
  const base = node.podGateway.slice(0, node.podGateway.lastIndexOf(".") + 1);
  const host = pod.ip.startsWith(base) ? Number(pod.ip.slice(base.length)) : Number.NaN;
  if (!(host >= 2 && host <= 254)) {
    throw new AmbitError(
      "INVALID_FIELD",
      `pod ${pod.key}: ip ${pod.ip} is not a pod address of node ${node.name} (${node.podCidr})`,
    );
  }
  const netns = podNetnsName(layout, pod.key);
  return {
    key: pod.key,
    node: node.name,
    netns,
    netnsPath: `${NETNS_DIR}/${netns}`,
    ip: pod.ip,
    nodeIf: `p${host}`,
  };
}

export function nodeOf(layout: MeshLayout, name: string): NodeLayout {
  const node = layout.nodes.find((n) => n.name === name);
  if (!node) throw new AmbitError("INVALID_FIELD", `node '${name}' is not part of mesh ${layout.meshId}`);
  return node;
}

/** Creates the pod's namespace and wires it to its node (pure plan). */
export function planPodNetwork(layout: MeshLayout, pod: PodNetwork): NetworkStep[] {
  const node = nodeOf(layout, pod.node);
  const n = node.netns;
  const p = pod.netns;
  return [
    ["ip", "netns", "add", p],
    ["ip", "-n", p, "link", "set", "lo", "up"],
    ["ip", "-n", n, "link", "add", pod.nodeIf, "type", "veth", "peer", "name", "eth0", "netns", p],
    ["ip", "-n", n, "addr", "add", `${node.podGateway}/32`, "dev", pod.nodeIf],
    ["ip", "-n", n, "link", "set", pod.nodeIf, "up"],
    ["ip", "-n", n, "route", "replace", `${pod.ip}/32`, "dev", pod.nodeIf, "src", node.podGateway],
    ["ip", "-n", p, "addr", "add", `${pod.ip}/32`, "dev", "eth0"],
    ["ip", "-n", p, "link", "set", "eth0", "up"],
    ["ip", "-n", p, "route", "add", node.podGateway, "dev", "eth0", "scope", "link"],
    ["ip", "-n", p, "route", "add", "default", "via", node.podGateway, "dev", "eth0"],
  ];
}

/**
 * Sends the pod's DNS (udp and tcp 53, to any server) to `target` — e.g. a
 * DNS proxy on the node's address — so that pods outside the mesh resolve
 * Service names too (pure plan). Lives in its own chain AMBIT_DNS (nat
 * OUTPUT); enrolled pods' capture (AMBIT_OUTPUT, inserted first) still wins.
 */
export function planPodDns(pod: PodNetwork, target: { ip: string; port: number }): NetworkStep[] {
  const to = `${target.ip}:${target.port}`;
  const script = [
    "iptables-restore -w 5 --noflush <<'AMBIT_RULES'",
    "*nat",
    ":AMBIT_DNS - [0:0]",
    `-A AMBIT_DNS -p udp --dport 53 -j DNAT --to-destination ${to}`,
    `-A AMBIT_DNS -p tcp --dport 53 -j DNAT --to-destination ${to}`,
    "COMMIT",
    "AMBIT_RULES",
    "iptables -w 5 -t nat -C OUTPUT -j AMBIT_DNS 2>/dev/null || iptables -w 5 -t nat -A OUTPUT -j AMBIT_DNS",
  ].join("\n");
  return [["nsenter", `--net=${pod.netnsPath}`, "sh", "-ec", script]];
}

/**
 * Removing the namespace removes its veth pair and the node's route with it,
 * but the kernel tears a deleted namespace down lazily: until then the node
 * side of the pair keeps its name, and a pod added at once with the same
 * interface name fails with "File exists". Deleting eth0 first frees the pair
 * synchronously (absent after a half-done setup: fine).
 */
export function planPodRemoval(pod: PodNetwork): NetworkStep[] {
  return [
    ["sh", "-c", `ip -n ${shellWord(pod.netns)} link del eth0 2>/dev/null || true`],
    ["ip", "netns", "del", pod.netns],
  ];
}

function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** Runs the steps in order, in one shell; stops at the first failure (CommandError quotes it). */
export async function applySteps(steps: readonly NetworkStep[]): Promise<void> {
  if (steps.length === 0) return;
  const script = steps.map((s) => s.map(shellWord).join(" ")).join("\n");
  await runCommand(["sh", "-ec", script]);
}

/** Names of the existing namespaces that start with the prefix. */
export function listNetns(prefix: string): string[] {
  try {
    return fs.readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

/** Pids of the processes whose network namespace is the named one. */
export async function netnsPids(netns: string): Promise<number[]> {
  const r = await runCommand(["ip", "netns", "pids", netns], { allowFail: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * Removes every namespace named `ambit-<meshId>-*` after ending the processes
 * inside them (SIGTERM, then SIGKILL after `graceMs`). Works on a partial
 * setup, and when run twice. Returns the namespaces removed.
 */
export async function destroyMeshNetwork(meshId: string, opts: { graceMs?: number } = {}): Promise<string[]> {
  validateMeshId(meshId);
  const names = listNetns(meshPrefix(meshId));
  await killNetnsProcesses(names, opts.graceMs ?? 3000);
  const removed: string[] = [];
  // Pods first, then nodes and the control plane, then the fabric: each
  // deletion takes the veth pair with it, so order only affects speed.
  const rank = (n: string) => (n.includes("-p-") ? 0 : n.endsWith("-fabric") ? 2 : 1);
  for (const name of [...names].sort((a, b) => rank(a) - rank(b))) {
    const r = await runCommand(["ip", "netns", "del", name], { allowFail: true });
    if (r.code === 0 || !fs.existsSync(`${NETNS_DIR}/${name}`)) removed.push(name);
  }
  const left = listNetns(meshPrefix(meshId));
  if (left.length > 0) {
    throw new AmbitError("NETNS_COMMAND", `mesh ${meshId}: could not remove namespaces ${left.join(", ")}`);
  }
  return removed;
}

/** SIGTERM every process inside the namespaces, wait up to graceMs, then SIGKILL what is left. */
export async function killNetnsProcesses(names: string[], graceMs: number): Promise<void> {
  const pidsOf = async () =>
    [...new Set((await Promise.all(names.map(netnsPids))).flat())].filter((p) => p !== process.pid);
  let pids = await pidsOf();
  if (pids.length === 0) return;
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pids.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50)); // polling the kernel's process table; no event exists for "exited"
    pids = pids.filter(alive);
  }
  for (const pid of pids) signal(pid, "SIGKILL");
  // The kernel frees a namespace's interfaces only once the processes are reaped.
  const killDeadline = Date.now() + 5000;
  while ((await pidsOf()).length > 0 && Date.now() < killDeadline) {
    for (const pid of await pidsOf()) signal(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0): count it as gone.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

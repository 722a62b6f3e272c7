// Pure decisions of `ambit up`'s supervisor: which nodes exist, which node a
// pod runs on, where each file of the mesh lives, and what the controller's
// facts file and each ztunnel's pods file say. The supervisor applies them.
import path from "node:path";
import type { Pod } from "../controller/provider/objects.js";
import { AmbitError } from "../core/errors/errors.js";
import type { MeshLayout } from "./network.js";
import { listMeshes, stateDir } from "./state.js";

export const DEFAULT_MESH_ID = "local";
export const SYSTEM_NAMESPACE = "ambit-system";
export const CONTROLLER_KEY = `${SYSTEM_NAMESPACE}/controller`;
export const ZTUNNEL_PREFIX = "ztunnel-";
/** `ambit up --observability`: Prometheus and Jaeger run as the mesh's own pods in the control plane. */
export const PROMETHEUS_KEY = `${SYSTEM_NAMESPACE}/prometheus`;
export const JAEGER_KEY = `${SYSTEM_NAMESPACE}/jaeger`;

/** Ports of the components inside their namespaces (fixed: every node has its own namespace). */
export const COMPONENT_PORTS = {
  xds: 15010,
  secure: 15012,
  controllerAdmin: 15014,
  ztunnelAdmin: 15000,
  ztunnelMetrics: 15020,
  ztunnelReadiness: 15021,
} as const;

export function ztunnelKey(node: string): string {
  return `${SYSTEM_NAMESPACE}/${ZTUNNEL_PREFIX}${node}`;
}

/** Whether a runtime pod key is one of the mesh's own components. */
export function isComponentKey(key: string): boolean {
  return (
    key.startsWith(`${SYSTEM_NAMESPACE}/`) &&
    (key === CONTROLLER_KEY ||
      key === PROMETHEUS_KEY ||
      key === JAEGER_KEY ||
      key.slice(SYSTEM_NAMESPACE.length + 1).startsWith(ZTUNNEL_PREFIX))
  );
}

/** Every file of a mesh under its state directory. */
export interface MeshPaths {
  root: string;
  logs: string;
  caDir: string;
  factsFile: string;
  tokensFile: string;
  controllerSocket: string;
  /** The controller's dashboard on a Unix socket; the supervisor forwards a host port to it. */
  dashboardSocket: string;
  supervisorLog: string;
  nodeDir(node: string): string;
  nodeTokenFile(node: string): string;
  podsFile(node: string): string;
  ztunnelSocket(node: string): string;
  /** Log file of a pod's (or component's) container, as LocalRuntime writes it. */
  containerLog(key: string, container: string): string;
  podLogDir(key: string): string;
}

export function meshPaths(meshId: string): MeshPaths {
  const root = stateDir(meshId);
  const logs = path.join(root, "logs");
  const nodeDir = (node: string) => path.join(root, "nodes", node);
  const podLogDir = (key: string) => path.join(logs, key.replace(/\//g, "."));
  return {
    root,
    logs,
    caDir: path.join(root, "ca"),
    factsFile: path.join(root, "facts.json"),
    tokensFile: path.join(root, "tokens.json"),
    // Unix socket paths are limited to 107 bytes: keep them short.
    controllerSocket: path.join(root, "controller.sock"),
    dashboardSocket: path.join(root, "dashboard.sock"),
    supervisorLog: path.join(logs, "supervisor.log"),
    nodeDir,
    nodeTokenFile: (node) => path.join(nodeDir(node), "token"),
    podsFile: (node) => path.join(nodeDir(node), "pods.json"),
    ztunnelSocket: (node) => path.join(nodeDir(node), "ztunnel.sock"),
    containerLog: (key, container) => path.join(podLogDir(key), `${container}.log`),
    podLogDir,
  };
}

/**
 * The mesh a command means: the one named, else $AMBIT_MESH_ID, else "local"
 * when it exists or nothing exists, else the only mesh that is up.
 */
export function resolveMeshId(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const id = given ?? env.AMBIT_MESH_ID;
  if (id) return id;
  const meshes = listMeshes();
  if (meshes.length === 1) return meshes[0]!;
  if (meshes.length > 1 && !meshes.includes(DEFAULT_MESH_ID)) {
    throw new AmbitError(
      "CONFIG",
      `several local meshes are up (${meshes.join(", ")}): pick one with --mesh-id`,
    );
  }
  return DEFAULT_MESH_ID;
}

/**
 * Node names: node-1..node-N, then the names pods ask for (spec.nodeName) or
 * YAML Nodes declare that are not among them, sorted. A pod pinned to a node
 * gets that node, as a scheduler with that node would do.
 */
export function planNodeNames(count: number, pods: Pick<Pod, "spec">[], declared: string[] = []): string[] {
  if (!Number.isInteger(count) || count < 1)
    throw new AmbitError("CONFIG", `--nodes: '${count}' is not a positive number`);
  const names = Array.from({ length: count }, (_, i) => `node-${i + 1}`);
  const extra = new Set<string>();
  for (const n of declared) if (!names.includes(n)) extra.add(n);
  for (const p of pods) {
    const n = p.spec.nodeName;
    if (n && !names.includes(n)) extra.add(n);
  }
  return [...names, ...[...extra].sort()];
}

export interface PlacementRequest {
  key: string;
  nodeName?: string;
}

/**
 * Node of every pod: pods already placed keep their node; pinned pods go to
 * their node; the others to the node with the fewest pods (ties: the first),
 * in key order so that the same directory gives the same placement.
 */
export function placePods(
  pods: PlacementRequest[],
  nodes: string[],
  placed: ReadonlyMap<string, string>,
): Map<string, string> {
  const out = new Map<string, string>();
  const load = new Map(nodes.map((n) => [n, 0]));
  const wanted = new Set(pods.map((p) => p.key));
  for (const [key, node] of placed) {
    if (!wanted.has(key)) continue;
    out.set(key, node);
    load.set(node, (load.get(node) ?? 0) + 1);
  }
  const rest = pods
    .filter((p) => !out.has(p.key))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const p of rest.filter((p) => p.nodeName)) {
    out.set(p.key, p.nodeName!);
    load.set(p.nodeName!, (load.get(p.nodeName!) ?? 0) + 1);
  }
  for (const p of rest.filter((p) => !p.nodeName)) {
    let best = nodes[0]!;
    for (const n of nodes) if ((load.get(n) ?? 0) < (load.get(best) ?? 0)) best = n;
    out.set(p.key, best);
    load.set(best, (load.get(best) ?? 0) + 1);
  }
  return out;
}

export interface RunningPodFacts {
  key: string;
  node: string;
  ip: string;
  netnsPath: string;
  ready: boolean;
}

/** The controller's facts file (controller/facts-file.ts) for these pods and nodes. */
export function factsJson(layout: MeshLayout, pods: RunningPodFacts[]) {
  const sorted = [...pods].sort((a, b) => (a.key < b.key ? -1 : 1));
  return {
    pods: Object.fromEntries(sorted.map((p) => [p.key, { ip: p.ip, node: p.node, ready: p.ready }])),
    nodes: Object.fromEntries(layout.nodes.map((n) => [n.name, { address: n.ip }])),
  };
}

/** One node's pods file (ztunnel/pods-file.ts): every pod on the node; ztunnel enrols those the controller says are enrolled. */
export function podsFileJson(node: string, pods: RunningPodFacts[]) {
  return pods
    .filter((p) => p.node === node)
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((p) => ({ key: p.key, netnsPath: p.netnsPath, ip: p.ip }));
}

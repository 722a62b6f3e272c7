// The parsed files + live facts → one ClusterSnapshot: duplicates refused,
// workloads expanded into pods, Service cluster IPs allocated where the YAML
// has none (the API server's job), facts from the local runner merged in.
// Pure apart from the VIP allocation memory the caller passes in.
import { ObjectError } from "../../../core/errors/errors.js";
import {
  type AnyObject,
  type ClusterSnapshot,
  emptySnapshot,
  type LiveFacts,
  type Node,
  objectRef,
  type Pod,
  type Service,
  SNAPSHOT_FIELD_BY_KIND,
  type WorkloadObject,
} from "../objects.js";
import { expandWorkload } from "./expand.js";
import type { SourcedObject } from "./parse.js";
import { stableUid } from "./parse.js";
import { isWaypointGateway, waypointObjects } from "./waypoints.js";

/** The local service CIDR: 10.96.0.0/16, as kubeadm's default (first half). */
const VIP_BASE = (10 << 24) | (96 << 16);
const VIP_SIZE = 1 << 16;

export function emptyFacts(): LiveFacts {
  return { pods: new Map(), nodes: new Map() };
}

export interface AssembleResult {
  snapshot: ClusterSnapshot;
  errors: ObjectError[];
}

/**
 * Builds the snapshot. `files` must be in a stable order (sorted by path);
 * the first definition of an object wins. `vipMemory` (Service `ns/name` →
 * VIP) keeps allocated VIPs stable across calls; it is updated in place.
 */
export function assembleSnapshot(
  files: { file: string; objects: SourcedObject[] }[],
  facts: LiveFacts,
  vipMemory: Map<string, string> = new Map(),
): AssembleResult {
  const errors: ObjectError[] = [];
  const snapshot = emptySnapshot();
  const sources: Record<string, string> = {};
  const add = (o: AnyObject, file: string | undefined): boolean => {
    const ref = objectRef(o);
    if (Object.hasOwn(sources, ref)) {
      errors.push(
        new ObjectError(
          "DUPLICATE_OBJECT",
          { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, file },
          undefined,
          `already defined${sources[ref] ? ` in ${sources[ref]}` : ""}; this one is ignored`,
        ),
      );
      return false;
    }
    sources[ref] = file ?? "";
    (snapshot[SNAPSHOT_FIELD_BY_KIND[o.kind]] as AnyObject[]).push(o);
    return true;
  };
  for (const f of files) for (const so of f.objects) add(structuredClone(so.object), so.file);
  // What a cluster's waypoint deployer would create; the YAML's own objects of those names win.
  for (const g of [...snapshot.gateways]) {
    if (!isWaypointGateway(g)) continue;
    const { serviceAccount, deployment, service } = waypointObjects(g);
    for (const o of [serviceAccount, deployment, service])
      if (!Object.hasOwn(sources, objectRef(o))) add(o, sources[objectRef(g)]);
  }

  mergeNodeFacts(snapshot, facts);
  const nodeNames = snapshot.nodes.map((n) => n.metadata.name);
  const workloads: WorkloadObject[] = [
    ...snapshot.deployments,
    ...snapshot.replicaSets,
    ...snapshot.statefulSets,
    ...snapshot.daemonSets,
    ...snapshot.jobs,
  ];
  for (const w of workloads) {
    const file = sources[objectRef(w)];
    const { pods, replicaSets } = expandWorkload(w, nodeNames);
    for (const rs of replicaSets) add(rs, file);
    for (const p of pods) add(p, file);
  }
  allocateVips(snapshot.services, vipMemory);
  applyPodFacts(snapshot.pods, snapshot.nodes, facts);
  for (const field of Object.values(SNAPSHOT_FIELD_BY_KIND)) {
    (snapshot[field] as AnyObject[]).sort(byNamespaceName);
  }
  // Drop sources of objects that never had a file (nodes synthesized from facts).
  for (const [k, v] of Object.entries(sources)) if (v === "") delete sources[k];
  snapshot.sources = sources;
  return { snapshot, errors };
}

function byNamespaceName(a: AnyObject, b: AnyObject): number {
  const ka = `${a.metadata.namespace ?? ""}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Nodes known only from facts become Node objects; YAML Nodes get the fact address when they have none. */
function mergeNodeFacts(snapshot: ClusterSnapshot, facts: LiveFacts): void {
  const byName = new Map(snapshot.nodes.map((n) => [n.metadata.name, n]));
  for (const [name, f] of facts.nodes) {
    let node = byName.get(name);
    if (!node) {
      node = {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name, uid: stableUid(`Node ${name}`) },
        status: { addresses: [] },
      };
      snapshot.nodes.push(node);
      byName.set(name, node);
    }
    node.status ??= {};
    node.status.addresses ??= [];
    if (!node.status.addresses.some((a) => a.type === "InternalIP")) {
      node.status.addresses.push({ type: "InternalIP", address: f.address });
    }
  }
}

function ipToString(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Gives each ClusterIP Service without a clusterIP a VIP, stable across calls through `memory`. */
export function allocateVips(services: Service[], memory: Map<string, string>): void {
  const taken = new Set<string>();
  for (const s of services) for (const ip of serviceIps(s)) taken.add(ip);
  const pending: Service[] = [];
  for (const s of services) {
    if (s.spec.type === "ExternalName" || s.spec.clusterIP === "None" || serviceIps(s).length > 0) continue;
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    const prev = memory.get(key);
    if (prev && !taken.has(prev)) {
      setVip(s, prev);
      taken.add(prev);
    } else pending.push(s);
  }
  for (const s of pending) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    // .0 and .1 stay free (the network and, by convention, the API server's Service).
    let offset = 2 + (hash32(key) % (VIP_SIZE - 3));
    let ip = ipToString(VIP_BASE + offset);
    while (taken.has(ip)) {
      offset = offset + 1 >= VIP_SIZE - 1 ? 2 : offset + 1;
      ip = ipToString(VIP_BASE + offset);
    }
    taken.add(ip);
    memory.set(key, ip);
    setVip(s, ip);
  }
}

function serviceIps(s: Service): string[] {
  const ips = s.spec.clusterIPs?.length ? s.spec.clusterIPs : s.spec.clusterIP ? [s.spec.clusterIP] : [];
  return ips.filter((ip) => ip !== "None" && ip !== "");
}

function setVip(s: Service, ip: string): void {
  s.spec.clusterIP = ip;
  s.spec.clusterIPs = [ip];
}

/**
 * Live facts into pods. What the YAML states (spec.nodeName, status.podIP)
 * wins; readiness from the runner wins over the YAML (it is observed).
 */
export function applyPodFacts(pods: Pod[], nodes: Node[], facts: LiveFacts): void {
  const nodeAddress = new Map(
    nodes.map((n) => [n.metadata.name, n.status?.addresses?.find((a) => a.type === "InternalIP")?.address]),
  );
  for (const pod of pods) {
    const f = facts.pods.get(`${pod.metadata.namespace}/${pod.metadata.name}`);
    if (f?.node && !pod.spec.nodeName) pod.spec.nodeName = f.node;
    pod.status ??= {};
    const status = pod.status;
    if (f?.ip && !status.podIP && !status.podIPs?.length) status.podIP = f.ip;
    if (status.podIP && !status.podIPs?.length) status.podIPs = [{ ip: status.podIP }];
    if (!status.podIP && status.podIPs?.length) status.podIP = status.podIPs[0]!.ip;
    if (pod.spec.nodeName && !status.hostIP) {
      const addr = nodeAddress.get(pod.spec.nodeName);
      if (addr) status.hostIP = addr;
    }
    if (f?.ready !== undefined) {
      const conditions = (status.conditions ?? []).filter((c) => c.type !== "Ready");
      conditions.push({ type: "Ready", status: f.ready ? "True" : "False" });
      status.conditions = conditions;
    }
    if (status.podIP && !status.phase) status.phase = "Running";
    if (Object.keys(status).length === 0) delete pod.status;
  }
}

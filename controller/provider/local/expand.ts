// Workloads → Pods, as the Kubernetes controllers would create them:
// replica counts, labels from the template plus the controller's own labels,
// generated names and ownerReferences. Names are derived from hashes (not
// random) so that re-reading the same files yields the same pods, and a
// changed template yields new names, as a rollout would.
import { createHash } from "node:crypto";
import type {
  DaemonSet,
  Deployment,
  Job,
  ObjectMeta,
  OwnerReference,
  Pod,
  PodTemplateSpec,
  ReplicaSet,
  StatefulSet,
  WorkloadObject,
} from "../objects.js";
import { stableUid } from "./parse.js";

/** Kubernetes' rand.SafeEncodeString alphabet (no vowels, no confusable digits). */
const ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789";

function fnv32a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** JSON with object keys sorted, so equal templates hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const keys = Object.keys(v as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** The pod-template-hash: FNV-32a of the template, encoded like Kubernetes' SafeEncodeString of its decimal form. */
export function templateHash(template: PodTemplateSpec): string {
  const digits = String(fnv32a(canonicalJson(template)));
  let out = "";
  for (const ch of digits) out += ALPHANUMS[ch.charCodeAt(0) % ALPHANUMS.length];
  return out;
}

/** A 5-character suffix like rand.String(5), derived from a seed. */
export function nameSuffix(seed: string): string {
  const h = createHash("sha256").update(seed).digest();
  let out = "";
  for (let i = 0; i < 5; i++) out += ALPHANUMS[h[i]! % ALPHANUMS.length];
  return out;
}

function ownerRef(owner: { apiVersion: string; kind: string; metadata: ObjectMeta }): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid ?? stableUid(`${owner.kind} ${owner.metadata.namespace}/${owner.metadata.name}`),
    controller: true,
    blockOwnerDeletion: true,
  };
}

function podFrom(
  template: PodTemplateSpec,
  namespace: string,
  name: string,
  extraLabels: Record<string, string>,
  owner: { apiVersion: string; kind: string; metadata: ObjectMeta },
): Pod {
  const spec = structuredClone(template.spec);
  const metadata: ObjectMeta = {
    name,
    namespace,
    labels: { ...(template.metadata?.labels ?? {}), ...extraLabels },
    uid: stableUid(`Pod ${namespace}/${name}`),
    ownerReferences: [ownerRef(owner)],
  };
  if (template.metadata?.annotations) metadata.annotations = { ...template.metadata.annotations };
  return { apiVersion: "v1", kind: "Pod", metadata, spec };
}

function replicaSetPods(rs: ReplicaSet, extraLabels: Record<string, string>): Pod[] {
  const ns = rs.metadata.namespace ?? "default";
  const pods: Pod[] = [];
  for (let i = 0; i < (rs.spec.replicas ?? 1); i++) {
    const name = `${rs.metadata.name}-${nameSuffix(`${ns}/${rs.metadata.name}/${i}`)}`;
    pods.push(podFrom(rs.spec.template, ns, name, extraLabels, rs));
  }
  return pods;
}

export interface Expansion {
  pods: Pod[];
  /** ReplicaSets the Deployments own (as the Deployment controller would create them). */
  replicaSets: ReplicaSet[];
}

/** Expands one workload; `nodes` are the node names (for DaemonSets). */
export function expandWorkload(w: WorkloadObject, nodes: string[]): Expansion {
  const ns = w.metadata.namespace ?? "default";
  switch (w.kind) {
    case "Deployment":
      return expandDeployment(w);
    case "ReplicaSet":
      return { pods: replicaSetPods(w, {}), replicaSets: [] };
    case "StatefulSet":
      return { pods: expandStatefulSet(w, ns), replicaSets: [] };
    case "DaemonSet":
      return { pods: expandDaemonSet(w, ns, nodes), replicaSets: [] };
    case "Job":
      return { pods: expandJob(w, ns), replicaSets: [] };
  }
}

function expandDeployment(d: Deployment): Expansion {
  const ns = d.metadata.namespace ?? "default";
  const hash = templateHash(d.spec.template);
  const rsName = `${d.metadata.name}-${hash}`;
  const template: PodTemplateSpec = {
    ...d.spec.template,
    metadata: {
      ...d.spec.template.metadata,
      labels: { ...(d.spec.template.metadata?.labels ?? {}), "pod-template-hash": hash },
    },
  };
  const rs: ReplicaSet = {
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: {
      name: rsName,
      namespace: ns,
      labels: { ...(template.metadata?.labels ?? {}) },
      uid: stableUid(`ReplicaSet ${ns}/${rsName}`),
      ownerReferences: [ownerRef(d)],
    },
    spec: {
      replicas: d.spec.replicas ?? 1,
      selector: { matchLabels: { ...(d.spec.selector.matchLabels ?? {}), "pod-template-hash": hash } },
      template,
    },
  };
  return { pods: replicaSetPods(rs, {}), replicaSets: [rs] };
}

function expandStatefulSet(s: StatefulSet, ns: string): Pod[] {
  const revision = `${s.metadata.name}-${templateHash(s.spec.template)}`;
  const pods: Pod[] = [];
  for (let i = 0; i < (s.spec.replicas ?? 1); i++) {
    const name = `${s.metadata.name}-${i}`;
    const pod = podFrom(
      s.spec.template,
      ns,
      name,
      {
        "controller-revision-hash": revision,
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": String(i),
      },
      s,
    );
    pod.spec.hostname = name;
    if (s.spec.serviceName) pod.spec.subdomain = s.spec.serviceName;
    pods.push(pod);
  }
  return pods;
}

function expandDaemonSet(d: DaemonSet, ns: string, nodes: string[]): Pod[] {
  const hash = templateHash(d.spec.template);
  const selector = d.spec.template.spec.nodeSelector;
  return [...nodes].sort().flatMap((node) => {
    // nodeSelector against node names only: local nodes carry no other labels.
    if (
      selector &&
      selector["kubernetes.io/hostname"] !== undefined &&
      selector["kubernetes.io/hostname"] !== node
    )
      return [];
    const name = `${d.metadata.name}-${nameSuffix(`${ns}/${d.metadata.name}/${node}`)}`;
    const pod = podFrom(
      d.spec.template,
      ns,
      name,
      { "controller-revision-hash": hash, "pod-template-generation": "1" },
      d,
    );
    pod.spec.nodeName = node;
    return [pod];
  });
}

function expandJob(j: Job, ns: string): Pod[] {
  const parallelism = j.spec.parallelism ?? 1;
  const count = Math.min(parallelism, j.spec.completions ?? parallelism);
  const uid = j.metadata.uid ?? stableUid(`Job ${ns}/${j.metadata.name}`);
  const pods: Pod[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${j.metadata.name}-${nameSuffix(`${ns}/${j.metadata.name}/${i}`)}`;
    pods.push(
      podFrom(
        j.spec.template,
        ns,
        name,
        {
          "batch.kubernetes.io/controller-uid": uid,
          "batch.kubernetes.io/job-name": j.metadata.name,
          "controller-uid": uid,
          "job-name": j.metadata.name,
        },
        j,
      ),
    );
  }
  return pods;
}

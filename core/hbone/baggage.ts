// Peer metadata on the HBONE CONNECT, as Istio's ztunnel sends it: a W3C
// `baggage` header naming the source workload (k8s.namespace.name,
// k8s.<kind>.name, service.name, service.version, k8s.cluster.name). The
// receiver uses it ONLY for metric labels when it cannot name the caller by
// address: it is unauthenticated metadata and never an input to
// authorization (the peer's certificate is), exactly as in Istio.
import type { MeshWorkload } from "../model/types.js";

/** Longest `baggage` value a receiver reads; longer is ignored whole. */
export const MAX_BAGGAGE_BYTES = 1024;

export interface PeerBaggage {
  namespace: string;
  workload: string;
  app?: string;
  version?: string;
  cluster?: string;
}

type BaggageSource = Pick<
  MeshWorkload,
  "namespace" | "workloadName" | "workloadType" | "canonicalName" | "canonicalRevision" | "clusterId"
>;

const VALUE = /^[A-Za-z0-9._-]{1,253}$/;

// One string per workload object: the state hands out the same object until
// the workload changes, so the per-connection cost is one map lookup.
const cache = new WeakMap<object, string>();

/** The `baggage` value naming this workload (cached per workload object). */
export function peerBaggageFor(w: BaggageSource): string {
  let s = cache.get(w);
  if (s === undefined) {
    s = formatPeerBaggage(w);
    cache.set(w, s);
  }
  return s;
}

export function formatPeerBaggage(w: BaggageSource): string {
  const parts: string[] = [];
  const add = (k: string, v: string | undefined) => {
    if (v && VALUE.test(v)) parts.push(`${k}=${v}`);
  };
  add("k8s.cluster.name", w.clusterId);
  add("k8s.namespace.name", w.namespace);
  add(`k8s.${w.workloadType || "pod"}.name`, w.workloadName);
  add("service.name", w.canonicalName);
  add("service.version", w.canonicalRevision);
  return parts.join(",");
}

const KINDS = new Set(["deployment", "cronjob", "job", "pod", "statefulset", "daemonset", "replicaset"]);

/**
 * Parses a received `baggage` value strictly: every member `key=value` with
 * plain values (no properties, no escapes), at most MAX_BAGGAGE_BYTES,
 * namespace and workload both present. Anything else: undefined.
 */
export function parsePeerBaggage(raw: unknown): PeerBaggage | undefined {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > MAX_BAGGAGE_BYTES) return undefined;
  let namespace: string | undefined;
  let workload: string | undefined;
  let app: string | undefined;
  let version: string | undefined;
  let cluster: string | undefined;
  for (const member of raw.split(",")) {
    const eq = member.indexOf("=");
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq).trim();
    const value = member.slice(eq + 1).trim();
    if (!VALUE.test(value)) return undefined;
    if (key === "k8s.namespace.name") namespace = value;
    else if (key === "service.name") app = value;
    else if (key === "service.version") version = value;
    else if (key === "k8s.cluster.name") cluster = value;
    else if (key.startsWith("k8s.") && key.endsWith(".name") && KINDS.has(key.slice(4, -5))) workload = value;
  }
  if (!namespace || !workload) return undefined;
  return {
    namespace,
    workload,
    ...(app ? { app } : {}),
    ...(version ? { version } : {}),
    ...(cluster ? { cluster } : {}),
  };
}

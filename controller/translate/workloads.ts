// Pods → MeshWorkload, named and shaped as istiod names them for ztunnel.
import type { MeshWorkload, WorkloadServicePort } from "../../core/model/types.js";
import { LABEL_DATAPLANE_MODE, type Pod, type Service } from "../provider/objects.js";
import { labelsMatch, type TranslateContext } from "./context.js";
import { meshPorts, targetPortOf } from "./services.js";
import { workloadWaypoint } from "./use-waypoint.js";

/** Istio's label for pods that speak HBONE themselves (waypoints), enrolled or not. */
export const LABEL_TUNNEL = "networking.istio.io/tunnel";

/**
 * Enrolment: the namespace label `ambit.dev/dataplane-mode=ambient`, or the
 * same label on the pod (opt in); the pod label `=none` opts out. Host-network
 * pods cannot be captured and are never enrolled.
 */
export function tunnelOf(ctx: TranslateContext, pod: Pod): "hbone" | "none" {
  if (pod.metadata.labels?.[LABEL_TUNNEL] === "http") return "hbone";
  if (pod.spec.hostNetwork) return "none";
  const podMode = pod.metadata.labels?.[LABEL_DATAPLANE_MODE];
  if (podMode === "none") return "none";
  if (podMode === "ambient") return "hbone";
  return ctx.namespaceLabels(pod.metadata.namespace)[LABEL_DATAPLANE_MODE] === "ambient" ? "hbone" : "none";
}

export function podIps(pod: Pod): string[] {
  const ips = pod.status?.podIPs?.map((p) => p.ip) ?? [];
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  return ips;
}

/** Ready condition when known; a pod without one (static YAML) counts as ready unless its phase says otherwise. */
export function isHealthy(pod: Pod): boolean {
  const ready = pod.status?.conditions?.find((c) => c.type === "Ready");
  if (ready) return ready.status === "True";
  const phase = pod.status?.phase;
  return phase === undefined || phase === "Running";
}

/** istiod's GetDeployMetaFromPod: the workload name and type from the controlling owner. */
export function workloadMeta(pod: Pod): { name: string; type: MeshWorkload["workloadType"] } {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];
  if (!owner) return { name: pod.metadata.name, type: "pod" };
  const hash = pod.metadata.labels?.["pod-template-hash"];
  if (owner.kind === "ReplicaSet" && hash && owner.name.endsWith(`-${hash}`)) {
    return { name: owner.name.slice(0, -(hash.length + 1)), type: "deployment" };
  }
  if (owner.kind === "Job") {
    const m = /^(.+)-[0-9]{8,10}$/.exec(owner.name);
    return m ? { name: m[1]!, type: "cronjob" } : { name: owner.name, type: "job" };
  }
  if (owner.kind === "Deployment") return { name: owner.name, type: "deployment" };
  return { name: owner.name, type: "pod" };
}

function canonical(pod: Pod, workloadName: string): { name: string; revision: string } {
  const l = pod.metadata.labels ?? {};
  return {
    name: l["service.istio.io/canonical-name"] ?? l["app.kubernetes.io/name"] ?? l.app ?? workloadName,
    revision:
      l["service.istio.io/canonical-revision"] ?? l["app.kubernetes.io/version"] ?? l.version ?? "latest",
  };
}

/** The ports this pod backs for each Service that selects it; named target ports resolved from its containers. */
function servicePorts(
  ctx: TranslateContext,
  pod: Pod,
  services: Service[],
): Record<string, WorkloadServicePort[]> {
  const out: Record<string, WorkloadServicePort[]> = {};
  const named = new Map<string, number>();
  for (const c of pod.spec.containers) {
    for (const p of c.ports ?? [])
      if (p.name && (p.protocol ?? "TCP") === "TCP") named.set(p.name, p.containerPort);
  }
  for (const s of services) {
    const ns = s.metadata.namespace ?? "default";
    if (ns !== (pod.metadata.namespace ?? "default") || s.spec.type === "ExternalName") continue;
    const selector = s.spec.selector;
    if (!selector || Object.keys(selector).length === 0 || !labelsMatch(selector, pod.metadata.labels))
      continue;
    const ports: WorkloadServicePort[] = [];
    for (const p of meshPorts(s)) {
      const t = targetPortOf(p);
      const target = typeof t === "number" ? t : named.get(t);
      // As in Kubernetes, a pod without the named port is no endpoint for that port.
      if (target !== undefined) ports.push({ servicePort: p.port, targetPort: target });
    }
    out[`${ns}/${ctx.serviceHostname(s.metadata.name, ns)}`] = ports;
  }
  return out;
}

export function translatePod(
  ctx: TranslateContext,
  pod: Pod,
  policyKeys: string[],
): MeshWorkload | undefined {
  const ips = podIps(pod);
  const phase = pod.status?.phase;
  if (ips.length === 0 || phase === "Succeeded" || phase === "Failed") return undefined;
  const ns = pod.metadata.namespace ?? "default";
  const meta = workloadMeta(pod);
  const canon = canonical(pod, meta.name);
  const w: MeshWorkload = {
    uid: `${ctx.opts.clusterId}//v1/Pod/${ns}/${pod.metadata.name}`,
    name: pod.metadata.name,
    namespace: ns,
    ips,
    node: pod.spec.nodeName ?? "",
    serviceAccount: pod.spec.serviceAccountName || pod.spec.serviceAccount || "default",
    trustDomain: ctx.opts.trustDomain,
    tunnel: tunnelOf(ctx, pod),
    services: servicePorts(ctx, pod, ctx.snapshot.services),
    healthy: isHealthy(pod),
    canonicalName: canon.name,
    canonicalRevision: canon.revision,
    workloadName: meta.name,
    workloadType: meta.type,
    clusterId: ctx.opts.clusterId,
    network: ctx.opts.network,
    authorizationPolicies: policyKeys,
  };
  const waypoint = workloadWaypoint(ctx, pod);
  if (waypoint) w.waypoint = waypoint;
  return w;
}

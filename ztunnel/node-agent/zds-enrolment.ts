// The ADD-time enrolment decision from the Kubernetes API (the pod's and its
// namespace's labels), for pods the controller's model does not list yet,
// and the uninstall check (is our DaemonSet being deleted?). The rule is the
// controller's own (tunnelOf), so both always agree.
//
// ztunnel's API access is read-only: get pods, namespaces, and its own
// DaemonSet (manifests/install/rbac.yaml).
import type { KubeClient } from "../../controller/provider/kube/client.js";
import { isNotFound, KubeApiError } from "../../controller/provider/kube/client.js";
import type { Namespace, Pod } from "../../controller/provider/objects.js";
import type { TranslateContext } from "../../controller/translate/context.js";
import { tunnelOf } from "../../controller/translate/workloads.js";
import type { Logger } from "../../core/telemetry/logger.js";
import { logger } from "../../core/telemetry/logger.js";
import type { CniPodRef } from "./zds-codec.js";

/** Whether the pod is enrolled, by the same rule as the controller's translator. */
export function podEnrolled(pod: Pod, namespaceLabels: Record<string, string>): boolean {
  // tunnelOf reads only namespaceLabels from its context.
  const ctx = { namespaceLabels: () => namespaceLabels } as unknown as TranslateContext;
  return tunnelOf(ctx, pod) === "hbone";
}

export class KubeEnrolment {
  private readonly log: Logger;
  constructor(
    private readonly client: KubeClient,
    log?: Logger,
  ) {
    this.log = log ?? logger("ztunnel.cni");
  }

  /** true/false from the API; undefined when the API cannot be asked now (the model decides later). */
  async decide(ref: CniPodRef): Promise<boolean | undefined> {
    const ns = encodeURIComponent(ref.namespace);
    try {
      const [pod, namespace] = await Promise.all([
        this.client.get<Pod>(`/api/v1/namespaces/${ns}/pods/${encodeURIComponent(ref.name)}`),
        this.client.get<Namespace>(`/api/v1/namespaces/${ns}`),
      ]);
      return podEnrolled(pod, namespace.metadata.labels ?? {});
    } catch (e) {
      if (isNotFound(e)) return false; // deleted meanwhile
      this.log.warn(
        { pod: ref.key, err: (e as Error).message },
        "enrolment: API unreachable; the model decides later",
      );
      return undefined;
    }
  }

  /**
   * Whether the DaemonSet running this ztunnel is gone or being deleted:
   * then ztunnel's exit is an uninstall (take the CNI plugin out), not an
   * upgrade (keep it). Undefined when the API cannot tell.
   */
  async daemonSetDeleted(namespace: string, name: string): Promise<boolean | undefined> {
    try {
      const ds = await this.client.get<{ metadata: { deletionTimestamp?: string } }>(
        `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/daemonsets/${encodeURIComponent(name)}`,
      );
      return Boolean(ds.metadata.deletionTimestamp);
    } catch (e) {
      // `kubectl delete -k manifests/` may remove our RBAC or service account
      // before the DaemonSet's pods stop: lost access is an uninstall too (an
      // upgrade never removes them).
      const code = e instanceof KubeApiError ? e.statusCode : 0;
      if (code === 404 || code === 403 || code === 401) return true;
      return undefined;
    }
  }
}

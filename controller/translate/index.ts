// The translator: ClusterSnapshot → the mesh model (workloads, services, L4
// authorization). Pure: same snapshot and options, same result. Objects with
// invalid fields are skipped with an error naming object and field; the rest
// translates. Waypoint (L7) configuration is translated in waypoint*.ts.
import type { ObjectError } from "../../core/errors/errors.js";
import { type AuthzPolicy, type MeshService, type MeshWorkload, policyKey } from "../../core/model/types.js";
import type { ClusterSnapshot } from "../provider/objects.js";
import { translateAuthorizationPolicy } from "./authorization.js";
import {
  DEFAULT_TRANSLATE_OPTIONS,
  labelsMatch,
  TranslateContext,
  type TranslateOptions,
} from "./context.js";
import { PeerAuthnIndex } from "./peer-authentication.js";
import { translateService } from "./services.js";
import { translatePod } from "./workloads.js";

export {
  DEFAULT_TRANSLATE_OPTIONS,
  labelsMatch,
  TranslateContext,
  type TranslateOptions,
} from "./context.js";
export { STATIC_STRICT_POLICY_NAME } from "./peer-authentication.js";
export { appProtocolOf, serviceVips, targetPortOf } from "./services.js";
export { waypointAddress } from "./use-waypoint.js";
export { isHealthy, podIps, tunnelOf, workloadMeta } from "./workloads.js";

export interface TranslateResult {
  workloads: MeshWorkload[];
  services: MeshService[];
  /** AuthorizationPolicies and the policies PeerAuthentications convert to, sorted by key. */
  policies: AuthzPolicy[];
  /** Objects (or parts) not translated. */
  errors: ObjectError[];
  /** Translated, but not exactly as written (e.g. HTTP rules ztunnel cannot enforce, an undeclared namespace). */
  warnings: ObjectError[];
}

export function translate(
  snapshot: ClusterSnapshot,
  options: Partial<TranslateOptions> = {},
): TranslateResult {
  const ctx = new TranslateContext(snapshot, { ...DEFAULT_TRANSLATE_OPTIONS, ...options });
  const root = ctx.opts.rootNamespace;

  const services = snapshot.services.flatMap((s) => translateService(ctx, s) ?? []);

  const authz = snapshot.authorizationPolicies.flatMap((p) => {
    const out = translateAuthorizationPolicy(ctx, p);
    return out ? [{ source: p, policy: out }] : [];
  });
  const peerAuthn = new PeerAuthnIndex(ctx, snapshot.peerAuthentications);
  const policies = [...authz.map((a) => a.policy), ...peerAuthn.policies()].sort((a, b) =>
    cmp(policyKey(a), policyKey(b)),
  );

  const warnedNs = new Set<string>();
  const workloads = snapshot.pods.flatMap((pod) => {
    const ns = pod.metadata.namespace ?? "default";
    if (ns !== "default" && !ctx.namespaces.has(ns) && !warnedNs.has(ns)) {
      warnedNs.add(ns);
      ctx.warn(
        "MISSING_REFERENCE",
        pod,
        "metadata.namespace",
        `Namespace ${ns} is not defined; its pods are treated as not enrolled`,
      );
    }
    // istiod: selected workload-scoped AuthorizationPolicies (own or root namespace), sorted, then the PeerAuthentication-derived keys.
    const selected = authz
      .filter(
        ({ source, policy }) =>
          policy.scope === "workload" &&
          (policy.namespace === ns || policy.namespace === root) &&
          labelsMatch(source.spec.selector?.matchLabels, pod.metadata.labels),
      )
      .map(({ policy }) => policyKey(policy))
      .sort(cmp);
    return translatePod(ctx, pod, [...selected, ...peerAuthn.workloadPolicyKeys(pod)]) ?? [];
  });

  return { workloads, services, policies, errors: ctx.errors, warnings: ctx.warnings };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// PeerAuthentication → L4 authorization, the way istiod does it for ambient,
// so that ztunnel (ours or Istio's) needs no separate mTLS-mode concept:
//  - STRICT = "deny any connection without a peer identity": one static DENY
//    policy `<root>/istio_converted_static_strict` (notPrincipals: present),
//    sent whenever any PeerAuthentication exists, and listed in the
//    authorizationPolicies of each workload whose effective mode is STRICT
//    (mesh → namespace → workload inheritance, oldest policy wins per level).
//  - workload policies with portLevelMtls become a DENY policy
//    `<ns>/converted_peer_authentication_<name>` that carries the per-port
//    exceptions (or per-port STRICT), listed in the selected workloads instead.
// PERMISSIVE and DISABLE deny nothing (an enrolled pod's ztunnel cannot be
// told to drop mTLS; plaintext is simply accepted).
import type { AuthzPolicy, AuthzRule } from "../../core/model/types.js";
import type { MtlsMode, PeerAuthentication, Pod } from "../provider/objects.js";
import { labelsMatch, type TranslateContext } from "./context.js";

export const STATIC_STRICT_POLICY_NAME = "istio_converted_static_strict";
export const CONVERTED_PEER_AUTHN_PREFIX = "converted_peer_authentication_";

type Mtls = { mode?: MtlsMode } | undefined;
const isUnset = (m: Mtls): boolean => !m?.mode || m.mode === "UNSET";
const isStrict = (m: Mtls): boolean => m?.mode === "STRICT";
const isPermissive = (m: Mtls): boolean => m?.mode === "PERMISSIVE";
const isDisable = (m: Mtls): boolean => m?.mode === "DISABLE";

const NO_IDENTITY: AuthzRule = { clauses: [{ matches: [{ notPrincipals: [{ presence: true }] }] }] };

function hasSelector(p: PeerAuthentication): boolean {
  return Object.keys(p.spec?.selector?.matchLabels ?? {}).length > 0;
}

/** Oldest by creationTimestamp; among equals (or none set), the first in snapshot order. */
function oldest(list: PeerAuthentication[]): PeerAuthentication | undefined {
  let best: PeerAuthentication | undefined;
  for (const p of list) {
    if (!best || (p.metadata.creationTimestamp ?? "") < (best.metadata.creationTimestamp ?? "")) best = p;
  }
  return best;
}

function sortedPortEntries(p: PeerAuthentication): [number, Mtls][] {
  return Object.entries(p.spec?.portLevelMtls ?? {})
    .map(([port, m]) => [Number(port), m] as [number, Mtls])
    .sort((a, b) => a[0] - b[0]);
}

export function staticStrictPolicy(rootNamespace: string): AuthzPolicy {
  return {
    name: STATIC_STRICT_POLICY_NAME,
    namespace: rootNamespace,
    scope: "workload",
    action: "deny",
    rules: [NO_IDENTITY],
    dryRun: false,
  };
}

export function convertedPolicyName(p: PeerAuthentication): string {
  return `${CONVERTED_PEER_AUTHN_PREFIX}${p.metadata.name}`;
}

export class PeerAuthnIndex {
  private readonly nsLevel = new Map<string, PeerAuthentication>();
  private readonly all: PeerAuthentication[];
  /** Converted port-level policies by key `<ns>/<name>`. */
  private readonly converted = new Map<string, AuthzPolicy>();

  constructor(
    private readonly ctx: TranslateContext,
    list: PeerAuthentication[],
  ) {
    this.all = list;
    const byNs = new Map<string, PeerAuthentication[]>();
    for (const p of list) {
      if (hasSelector(p)) continue;
      const ns = p.metadata.namespace ?? "default";
      byNs.set(ns, [...(byNs.get(ns) ?? []), p]);
    }
    for (const [ns, ps] of byNs) this.nsLevel.set(ns, oldest(ps)!);
    for (const p of list) {
      const c = this.convert(p);
      if (c) this.converted.set(`${c.namespace}/${c.name}`, c);
    }
  }

  /** All policies derived from PeerAuthentications (the static one included when any exists). */
  policies(): AuthzPolicy[] {
    if (this.all.length === 0) return [];
    return [staticStrictPolicy(this.ctx.opts.rootNamespace), ...this.converted.values()];
  }

  /** istiod's convertPeerAuthentication: the port-level policy of a workload-selecting PeerAuthentication. */
  private convert(p: PeerAuthentication): AuthzPolicy | undefined {
    const ns = p.metadata.namespace ?? "default";
    const root = this.ctx.opts.rootNamespace;
    if (ns === root || !hasSelector(p) || sortedPortEntries(p).length === 0) return undefined;
    const mtls = p.spec.mtls;
    const nsCfg = this.nsLevel.get(ns);
    const rootCfg = this.nsLevel.get(root);
    const rules: AuthzRule[] = [];
    if (isStrict(mtls)) rules.push(NO_IDENTITY);
    const portRules: AuthzRule[] = [];
    let foundNonStrictPort = false;
    for (const [port, pm] of sortedPortEntries(p)) {
      if (isStrict(pm)) {
        const parentStrict =
          isStrict(mtls) ||
          (isUnset(mtls) && nsCfg !== undefined && isStrict(nsCfg.spec?.mtls)) ||
          (isUnset(mtls) &&
            (nsCfg === undefined || isUnset(nsCfg.spec?.mtls)) &&
            rootCfg !== undefined &&
            isStrict(rootCfg.spec?.mtls));
        if (parentStrict) continue; // the parent policy already enforces it
        // Each STRICT port is its own OR'd rule: deny no-identity traffic to that port.
        portRules.push({
          clauses: [{ matches: [{ notPrincipals: [{ presence: true }], destinationPorts: [port] }] }],
        });
      } else if (isPermissive(pm) || isDisable(pm)) {
        if (isPermissive(mtls) || isDisable(mtls)) continue;
        if (
          isUnset(mtls) &&
          ((nsCfg !== undefined && !isStrict(nsCfg.spec?.mtls)) ||
            (nsCfg === undefined && rootCfg !== undefined && !isStrict(rootCfg.spec?.mtls)) ||
            (nsCfg === undefined && rootCfg === undefined))
        ) {
          continue;
        }
        foundNonStrictPort = true;
        // Exempt this port from the no-identity deny: the rule only matches other ports.
        rules.push({ clauses: [{ matches: [{ notDestinationPorts: [port] }] }] });
      }
    }
    if (isStrict(mtls) && !foundNonStrictPort) return undefined; // plain STRICT: the static policy covers it
    if (rules.length === 0 && portRules.length === 0) return undefined;
    const mergeStrict =
      (rootCfg !== undefined &&
        isStrict(rootCfg.spec?.mtls) &&
        (nsCfg === undefined || isUnset(nsCfg.spec?.mtls) || isStrict(nsCfg.spec?.mtls))) ||
      (nsCfg !== undefined && isStrict(nsCfg.spec?.mtls));
    if (mergeStrict && foundNonStrictPort) rules.push(NO_IDENTITY);
    // istiod's groups: the per-port STRICT groups, then one group AND-ing `rules`.
    const groups: AuthzRule[] = [...portRules];
    if (rules.length > 0) groups.push({ clauses: rules.flatMap((r) => r.clauses) });
    return {
      name: convertedPolicyName(p),
      namespace: ns,
      scope: "workload",
      action: "deny",
      rules: groups,
      dryRun: false,
    };
  }

  /** istiod's convertedSelectorPeerAuthentications: the PeerAuthentication-derived policy keys of one pod. */
  workloadPolicyKeys(pod: Pod): string[] {
    const root = this.ctx.opts.rootNamespace;
    const ns = pod.metadata.namespace ?? "default";
    let meshCfg: PeerAuthentication | undefined;
    let nsCfg: PeerAuthentication | undefined;
    let wlCfg: PeerAuthentication | undefined;
    const older = (a: PeerAuthentication, b: PeerAuthentication | undefined): boolean =>
      b === undefined || (a.metadata.creationTimestamp ?? "") < (b.metadata.creationTimestamp ?? "");
    for (const p of this.all) {
      const pns = p.metadata.namespace ?? "default";
      if (!hasSelector(p)) {
        if (pns === root) {
          if (older(p, meshCfg)) meshCfg = p;
        } else if (pns === ns && older(p, nsCfg)) nsCfg = p;
      } else if (
        pns === ns &&
        pns !== root &&
        labelsMatch(p.spec.selector?.matchLabels, pod.metadata.labels)
      ) {
        if (older(p, wlCfg)) wlCfg = p;
      }
    }
    let strict = meshCfg ? isStrict(meshCfg.spec?.mtls) : false;
    if (nsCfg && !isUnset(nsCfg.spec?.mtls)) strict = isStrict(nsCfg.spec?.mtls);
    let portKey: string | undefined;
    if (wlCfg) {
      const spec = wlCfg.spec;
      const key = `${wlCfg.metadata.namespace}/${convertedPolicyName(wlCfg)}`;
      if (isStrict(spec.mtls)) strict = true;
      if (isPermissive(spec.mtls) || isDisable(spec.mtls)) strict = false;
      const ports = sortedPortEntries(wlCfg).map(([, m]) => m);
      const strictWithoutPorts = strict;
      if (ports.length > 0) {
        if (isStrict(spec.mtls)) {
          if (ports.some((m) => isPermissive(m) || isDisable(m))) {
            portKey = key;
            strict = false;
          }
        } else if (isPermissive(spec.mtls) || isDisable(spec.mtls)) {
          if (ports.some(isStrict)) portKey = key;
        } else if (strict) {
          if (ports.some(isPermissive)) {
            portKey = key;
            strict = false;
          }
        } else if (ports.some(isStrict)) portKey = key;
      }
      // Deviation from istiod, on purpose: where its two halves disagree (a
      // namespace policy with mode UNSET under a STRICT mesh), istiod would
      // reference a converted policy it never emits and drop the static one,
      // leaving the workload without STRICT. Never reference a missing policy.
      if (portKey && !this.converted.has(portKey)) {
        portKey = undefined;
        strict = strictWithoutPorts;
      }
    }
    const keys: string[] = [];
    if (strict) keys.push(`${root}/${STATIC_STRICT_POLICY_NAME}`);
    if (portKey) keys.push(portKey);
    return keys.sort();
  }
}

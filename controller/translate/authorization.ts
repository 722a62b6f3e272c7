// AuthorizationPolicy (ambit.dev/v1alpha1, Istio's shape) → the L4 AuthzPolicy
// ztunnel enforces, following istiod's ambient conversion:
//  - scope: root namespace without selector → global; no selector →
//    namespace; a selector → workload (listed in each selected workload).
//  - policies with targetRef(s) are for waypoints, not ztunnel: skipped here.
//  - ALLOW and DENY only; AUDIT and CUSTOM are errors (the policy is skipped).
//  - HTTP-only attributes (hosts, methods, paths, requestPrincipals,
//    remoteIpBlocks, `when` keys other than source.ip/namespace/principal and
//    destination.ip/port) cannot be seen at L4. As istiod does: in an ALLOW
//    policy the whole rule holding them is dropped (it matches nothing, so
//    less is allowed); in a DENY policy those attributes are ignored and the
//    rest of the rule applies (so more is denied). Either way the result is
//    more restrictive than written, never less, and a warning says so. A
//    waypoint enforces the full policy at L7.
//  - Values istiod would silently drop (a port that is not a number, an
//    ipBlock that is not an IP or CIDR) are errors here and skip the policy,
//    because a silently shorter list can allow more than intended.
import { isIP } from "node:net";
import type { AuthzMatch, AuthzPolicy, AuthzRule, CidrMatch, StringMatch } from "../../core/model/types.js";
import type { AuthorizationPolicy, AuthorizationRule } from "../provider/objects.js";
import type { TranslateContext } from "./context.js";

const L4_WHEN_KEYS = new Set([
  "source.ip",
  "source.namespace",
  "source.principal",
  "destination.ip",
  "destination.port",
]);
const HTTP_OPERATION_FIELDS = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"] as const;
const HTTP_SOURCE_FIELDS = [
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "requestPrincipals",
  "notRequestPrincipals",
] as const;

/** Istio's string matching: "*" any (present), "*x" suffix, "x*" prefix, else exact. */
export function stringMatch(v: string): StringMatch {
  if (v === "*") return { presence: true };
  if (v.startsWith("*")) return { suffix: v.slice(1) };
  if (v.endsWith("*")) return { prefix: v.slice(0, -1) };
  return { exact: v };
}

class InvalidValue extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

function ports(values: (string | number)[] | undefined, field: string): number[] | undefined {
  if (!values?.length) return undefined;
  return values.map((v, i) => {
    const s = String(v);
    if (!/^[0-9]+$/.test(s) || Number(s) > 65535)
      throw new InvalidValue(`${field}[${i}]`, `must be a port number 0-65535, got ${JSON.stringify(v)}`);
    return Number(s);
  });
}

function cidrs(values: string[] | undefined, field: string): CidrMatch[] | undefined {
  if (!values?.length) return undefined;
  return values.map((v, i) => {
    const [addr, len, extra] = v.split("/");
    const family = isIP(addr ?? "");
    const max = family === 6 ? 128 : 32;
    const length = len === undefined ? max : /^[0-9]+$/.test(len) ? Number(len) : Number.NaN;
    if (family === 0 || extra !== undefined || !(length >= 0 && length <= max)) {
      throw new InvalidValue(`${field}[${i}]`, `must be an IP address or CIDR, got ${JSON.stringify(v)}`);
    }
    return { address: addr!, length };
  });
}

function strings(values: string[] | undefined): StringMatch[] | undefined {
  return values?.length ? values.map(stringMatch) : undefined;
}

function serviceAccounts(
  values: string[] | undefined,
  policyNs: string,
): { namespace: string; serviceAccount: string }[] | undefined {
  if (!values?.length) return undefined;
  return values.map((v) => {
    const slash = v.indexOf("/");
    return slash >= 0
      ? { namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) }
      : { namespace: policyNs, serviceAccount: v };
  });
}

/** Drops undefined fields so that plans compare (and golden files read) cleanly. */
function compact(m: AuthzMatch): AuthzMatch {
  for (const k of Object.keys(m) as (keyof AuthzMatch)[]) if (m[k] === undefined) delete m[k];
  return m;
}

interface ConvertedRule {
  rule: AuthzRule;
  /** Field paths of HTTP-only attributes found in this rule. */
  httpFields: string[];
}

function convertRule(r: AuthorizationRule, f: string, policyNs: string): ConvertedRule {
  const httpFields: string[] = [];
  const clauses: AuthzRule["clauses"] = [];
  const toMatches = (r.to ?? []).map((to, i) => {
    const op = to.operation ?? {};
    const base = `${f}.to[${i}].operation`;
    for (const k of HTTP_OPERATION_FIELDS) if (op[k]?.length) httpFields.push(`${base}.${k}`);
    return compact({
      destinationPorts: ports(op.ports, `${base}.ports`),
      notDestinationPorts: ports(op.notPorts, `${base}.notPorts`),
    });
  });
  const fromMatches = (r.from ?? []).map((from, i) => {
    const s = from.source ?? {};
    const base = `${f}.from[${i}].source`;
    for (const k of HTTP_SOURCE_FIELDS) if (s[k]?.length) httpFields.push(`${base}.${k}`);
    return compact({
      sourceIps: cidrs(s.ipBlocks, `${base}.ipBlocks`),
      notSourceIps: cidrs(s.notIpBlocks, `${base}.notIpBlocks`),
      namespaces: strings(s.namespaces),
      notNamespaces: strings(s.notNamespaces),
      serviceAccounts: serviceAccounts(s.serviceAccounts, policyNs),
      notServiceAccounts: serviceAccounts(s.notServiceAccounts, policyNs),
      principals: strings(s.principals),
      notPrincipals: strings(s.notPrincipals),
    });
  });
  if (toMatches.length) clauses.push({ matches: toMatches });
  if (fromMatches.length) clauses.push({ matches: fromMatches });
  (r.when ?? []).forEach((w, i) => {
    const base = `${f}.when[${i}]`;
    if (!L4_WHEN_KEYS.has(w.key)) {
      httpFields.push(`${base}.key=${w.key}`);
      // An empty match: matches anything, as istiod emits it (only reachable for DENY).
      clauses.push({ matches: [{}] });
      return;
    }
    const m: AuthzMatch = {};
    const pos = w.values?.length ? w.values : undefined;
    const neg = w.notValues?.length ? w.notValues : undefined;
    switch (w.key) {
      case "source.namespace":
        m.namespaces = strings(pos);
        m.notNamespaces = strings(neg);
        break;
      case "source.principal":
        m.principals = strings(pos);
        m.notPrincipals = strings(neg);
        break;
      case "source.ip":
        m.sourceIps = cidrs(pos, `${base}.values`);
        m.notSourceIps = cidrs(neg, `${base}.notValues`);
        break;
      case "destination.ip":
        m.destinationIps = cidrs(pos, `${base}.values`);
        m.notDestinationIps = cidrs(neg, `${base}.notValues`);
        break;
      case "destination.port":
        m.destinationPorts = ports(pos, `${base}.values`);
        m.notDestinationPorts = ports(neg, `${base}.notValues`);
        break;
    }
    clauses.push({ matches: [compact(m)] });
  });
  return { rule: { clauses }, httpFields };
}

/** Converts one policy; undefined when it is not for ztunnel or is invalid (then an error is recorded). */
export function translateAuthorizationPolicy(
  ctx: TranslateContext,
  p: AuthorizationPolicy,
): AuthzPolicy | undefined {
  const spec = p.spec ?? {};
  if (spec.targetRef || spec.targetRefs?.length) return undefined; // enforced by the waypoint it targets
  const ns = p.metadata.namespace ?? "default";
  const actionIn = spec.action ?? "ALLOW";
  if (actionIn !== "ALLOW" && actionIn !== "DENY") {
    ctx.error(
      "INVALID_FIELD",
      p,
      "spec.action",
      `${actionIn} is not supported (ALLOW or DENY); the policy is not applied`,
    );
    return undefined;
  }
  const action = actionIn === "ALLOW" ? "allow" : "deny";
  const scope: AuthzPolicy["scope"] = spec.selector
    ? "workload"
    : ns === ctx.opts.rootNamespace
      ? "global"
      : "namespace";
  const rules: AuthzRule[] = [];
  const httpFields: string[] = [];
  try {
    (spec.rules ?? []).forEach((r, i) => {
      const c = convertRule(r, `spec.rules[${i}]`, ns);
      httpFields.push(...c.httpFields);
      // ALLOW: a rule with HTTP attributes never matches at L4, so it is left out.
      if (action === "allow" && c.httpFields.length > 0) return;
      rules.push(c.rule);
    });
  } catch (e) {
    if (!(e instanceof InvalidValue)) throw e;
    ctx.error("INVALID_FIELD", p, e.field, `${e.message}; the policy is not applied`);
    return undefined;
  }
  if (httpFields.length > 0) {
    const consequence =
      action === "allow"
        ? "within an ALLOW policy, rules with HTTP attributes are left out"
        : "the DENY policy is enforced without its HTTP attributes";
    ctx.warn(
      "INVALID_FIELD",
      p,
      httpFields.join(", "),
      `ztunnel cannot enforce HTTP attributes without a waypoint: ${consequence}, which is more restrictive than written`,
    );
  }
  return { name: p.metadata.name, namespace: ns, scope, action, rules, dryRun: false };
}

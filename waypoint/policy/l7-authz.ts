// L7 AuthorizationPolicy evaluation, Istio's semantics: any matching DENY
// denies; with ALLOW policies present, a request must match one of them;
// AUDIT never changes the decision. Compiled once per config update.
import type { L7AuthzPolicy, L7AuthzRule, L7Condition } from "../../core/model/waypoint.js";
import { counter } from "../../core/telemetry/metrics.js";
import type { AuthResult } from "./jwt.js";

export const deniedTotal = counter("ambit_waypoint_denied_total", "Requests refused by L7 policy", [
  "reason",
]);

export interface AuthzInput {
  method: string;
  /** Path without query. */
  path: string;
  host: string;
  port: number;
  headers: Record<string, string | string[] | undefined>;
  sourcePrincipal?: string;
  sourceIp?: string;
  auth?: AuthResult;
}

export interface AuthzDecision {
  allow: boolean;
  /** `<ns>/<name>` of the deciding policy, absent when it is the default. */
  policy?: string;
  /** Denied where a JWT would have been needed and none was given → 401 rather than 403. */
  needsAuthentication?: boolean;
}

/** Istio's string match: exact, `prefix*`, `*suffix`, `*`. */
export function istioMatch(pattern: string, v: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return v.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return v.endsWith(pattern.slice(1));
  return pattern === v;
}

function anyMatch(patterns: string[] | undefined, v: string | undefined, fold = false): boolean {
  if (v === undefined) return false;
  const vv = fold ? v.toLowerCase() : v;
  for (const p of patterns!) if (istioMatch(fold ? p.toLowerCase() : p, vv)) return true;
  return false;
}

/** spiffe://td/ns/<ns>/sa/<sa> → the part Istio compares (td/ns/x/sa/y), and the namespace. */
function principalParts(p: string | undefined): { principal?: string; namespace?: string } {
  if (!p) return {};
  const principal = p.startsWith("spiffe://") ? p.slice(9) : p;
  const m = /\/ns\/([^/]+)\//.exec(principal);
  return { principal, ...(m ? { namespace: m[1] } : {}) };
}

function inCidr(ip: string | undefined, cidr: string): boolean {
  if (!ip) return false;
  const [net, lenS] = cidr.split("/");
  if (!net) return false;
  if (!net.includes(".") || !ip.includes(".")) return ip === net;
  const len = lenS === undefined ? 32 : Number(lenS);
  const toInt = (a: string) => a.split(".").reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (toInt(ip) & mask) >>> 0 === (toInt(net) & mask) >>> 0;
}

function claimValues(claims: Record<string, unknown>, key: string): string[] {
  // request.auth.claims[a][b] → nested lookup
  const parts = [...key.matchAll(/\[([^\]]+)\]/g)].map((m) => m[1]!);
  let v: unknown = claims;
  for (const p of parts) v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === "string" && parts[parts.length - 1] === "scope") return v.split(" ");
  return [String(v)];
}

function conditionValues(
  c: L7Condition,
  i: AuthzInput,
  src: { principal?: string; namespace?: string },
): string[] {
  const k = c.key;
  if (k.startsWith("request.headers[")) {
    const v = i.headers[k.slice(16, -1).toLowerCase()];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }
  if (k.startsWith("request.auth.claims"))
    return i.auth ? claimValues(i.auth.claims as Record<string, unknown>, k.slice(19)) : [];
  switch (k) {
    case "source.namespace":
      return src.namespace ? [src.namespace] : [];
    case "source.principal":
      return src.principal ? [src.principal] : [];
    case "source.ip":
      return i.sourceIp ? [i.sourceIp] : [];
    case "destination.port":
      return [String(i.port)];
    case "request.auth.principal":
      return i.auth ? [i.auth.principal] : [];
    case "request.auth.audiences": {
      const aud = i.auth?.claims.aud;
      return aud === undefined ? [] : Array.isArray(aud) ? aud : [aud];
    }
    case "request.auth.presenter":
      return i.auth?.claims.azp !== undefined ? [String(i.auth.claims.azp)] : [];
    default:
      return [];
  }
}

function conditionMatches(
  c: L7Condition,
  i: AuthzInput,
  src: { principal?: string; namespace?: string },
): boolean {
  const vals = conditionValues(c, i, src);
  const isIp = c.key === "source.ip";
  const m = (pats: string[]) => vals.some((v) => pats.some((p) => (isIp ? inCidr(v, p) : istioMatch(p, v))));
  if (c.values?.length && !m(c.values)) return false;
  if (c.notValues?.length && m(c.notValues)) return false;
  return true;
}

function ruleMatches(
  r: L7AuthzRule,
  i: AuthzInput,
  src: { principal?: string; namespace?: string },
): boolean {
  if (r.from.length) {
    const ok = r.from.some(
      (f) =>
        (!f.principals?.length || anyMatch(f.principals, src.principal)) &&
        (!f.notPrincipals?.length || !anyMatch(f.notPrincipals, src.principal)) &&
        (!f.namespaces?.length || anyMatch(f.namespaces, src.namespace)) &&
        (!f.notNamespaces?.length || !anyMatch(f.notNamespaces, src.namespace)) &&
        (!f.requestPrincipals?.length || anyMatch(f.requestPrincipals, i.auth?.principal)) &&
        (!f.notRequestPrincipals?.length || !anyMatch(f.notRequestPrincipals, i.auth?.principal)) &&
        (!f.ipBlocks?.length || f.ipBlocks.some((c) => inCidr(i.sourceIp, c))) &&
        (!f.notIpBlocks?.length || !f.notIpBlocks.some((c) => inCidr(i.sourceIp, c))),
    );
    if (!ok) return false;
  }
  if (r.to.length) {
    const ok = r.to.some(
      (t) =>
        (!t.methods?.length || anyMatch(t.methods, i.method)) &&
        (!t.notMethods?.length || !anyMatch(t.notMethods, i.method)) &&
        (!t.paths?.length || anyMatch(t.paths, i.path)) &&
        (!t.notPaths?.length || !anyMatch(t.notPaths, i.path)) &&
        (!t.hosts?.length || anyMatch(t.hosts, i.host, true)) &&
        (!t.notHosts?.length || !anyMatch(t.notHosts, i.host, true)) &&
        (!t.ports?.length || t.ports.includes(i.port)) &&
        (!t.notPorts?.length || !t.notPorts.includes(i.port)),
    );
    if (!ok) return false;
  }
  for (const c of r.when) if (!conditionMatches(c, i, src)) return false;
  return true;
}

function usesRequestAuth(p: L7AuthzPolicy): boolean {
  return p.rules.some(
    (r) =>
      r.from.some((f) => f.requestPrincipals?.length) ||
      r.when.some((c) => c.key.startsWith("request.auth.")),
  );
}

export class L7Authorizer {
  private readonly deny: L7AuthzPolicy[];
  private readonly allow: L7AuthzPolicy[];
  private readonly allowNeedsAuth: boolean;
  constructor(policies: L7AuthzPolicy[]) {
    this.deny = policies.filter((p) => p.action === "DENY");
    this.allow = policies.filter((p) => p.action === "ALLOW");
    this.allowNeedsAuth = this.allow.some(usesRequestAuth);
  }

  get empty(): boolean {
    return this.deny.length === 0 && this.allow.length === 0;
  }

  evaluate(i: AuthzInput): AuthzDecision {
    const src = principalParts(i.sourcePrincipal);
    for (const p of this.deny)
      if (p.rules.some((r) => ruleMatches(r, i, src))) return { allow: false, policy: p.name };
    if (this.allow.length === 0) return { allow: true };
    for (const p of this.allow)
      if (p.rules.some((r) => ruleMatches(r, i, src))) return { allow: true, policy: p.name };
    return { allow: false, ...(this.allowNeedsAuth && !i.auth ? { needsAuthentication: true } : {}) };
  }
}

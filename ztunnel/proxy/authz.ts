// L4 authorization with the semantics of istio.security.Authorization as
// ztunnel implements them:
//   - policies apply by scope: global (all workloads), namespace (workloads of
//     the policy's namespace), workload (those listing `<ns>/<name>`);
//   - dry-run policies are evaluated for the explanation but never enforced;
//   - any matching DENY policy denies; then, when no ALLOW policy applies,
//     allow; otherwise allow only if some ALLOW policy matches;
//   - a policy matches when any rule matches; a rule when every clause
//     matches (no clauses: matches everything); a clause when any match
//     matches (no matches: nothing, which is how the translator encodes an
//     ALLOW rule whose HTTP-only fields cannot be checked at L4); a match
//     when every set field matches.
// Pure: the result names the policy and rule so `ambit why` can explain it.
import type {
  AuthzMatch,
  AuthzPolicy,
  CidrMatch,
  MeshWorkload,
  StringMatch,
} from "../../core/model/types.js";

export interface L4Connection {
  /** spiffe://td/ns/X/sa/Y of the peer; undefined for plaintext. */
  srcIdentity?: string;
  srcIp: string;
  dstIp: string;
  dstPort: number;
}

export type AuthzReason =
  /** A DENY policy matched. */
  | "deny_policy"
  /** An ALLOW policy matched. */
  | "allow_policy"
  /** No ALLOW policy applies to the workload: allowed by default. */
  | "no_allow_policies"
  /** ALLOW policies apply and none matched. */
  | "no_allow_match";

export interface AuthzDecision {
  allow: boolean;
  /** `<ns>/<name>` of the deciding policy (the matching DENY or ALLOW). */
  policy?: string;
  /** Index of the matching rule in that policy. */
  rule?: number;
  reason: AuthzReason;
  /** Dry-run policies that would have matched (not enforced). */
  dryRun?: { policy: string; rule: number; action: "allow" | "deny" }[];
}

/** Whether a policy applies to a workload by its scope. */
export function policyApplies(p: AuthzPolicy, dst: MeshWorkload): boolean {
  switch (p.scope) {
    case "global":
      return true;
    case "namespace":
      return p.namespace === dst.namespace;
    case "workload":
      return dst.authorizationPolicies.includes(`${p.namespace}/${p.name}`);
  }
}

export function authorize(
  conn: L4Connection,
  dst: MeshWorkload,
  policies: readonly AuthzPolicy[],
): AuthzDecision {
  const peer = peerOf(conn.srcIdentity);
  const allows: AuthzPolicy[] = [];
  let dryRun: AuthzDecision["dryRun"];
  for (const p of policies) {
    if (!policyApplies(p, dst)) continue;
    if (p.dryRun) {
      const r = matchingRule(p, conn, peer);
      if (r >= 0) {
        dryRun ??= [];
        dryRun.push({ policy: `${p.namespace}/${p.name}`, rule: r, action: p.action });
      }
      continue;
    }
    if (p.action === "allow") {
      allows.push(p);
      continue;
    }
    const r = matchingRule(p, conn, peer);
    if (r >= 0)
      return withDryRun(
        { allow: false, policy: `${p.namespace}/${p.name}`, rule: r, reason: "deny_policy" },
        dryRun,
      );
  }
  if (allows.length === 0) return withDryRun({ allow: true, reason: "no_allow_policies" }, dryRun);
  for (const p of allows) {
    const r = matchingRule(p, conn, peer);
    if (r >= 0)
      return withDryRun(
        { allow: true, policy: `${p.namespace}/${p.name}`, rule: r, reason: "allow_policy" },
        dryRun,
      );
  }
  return withDryRun({ allow: false, reason: "no_allow_match" }, dryRun);
}

function withDryRun(d: AuthzDecision, dryRun: AuthzDecision["dryRun"]): AuthzDecision {
  if (dryRun) d.dryRun = dryRun;
  return d;
}

interface Peer {
  /** Identity without the spiffe:// scheme, as Istio's principals are written (`td/ns/X/sa/Y`). */
  principal: string;
  uri: string;
  namespace: string;
  serviceAccount: string;
}

function peerOf(identity: string | undefined): Peer | undefined {
  if (!identity) return undefined;
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(identity);
  if (!m)
    return {
      principal: identity.replace(/^spiffe:\/\//, ""),
      uri: identity,
      namespace: "",
      serviceAccount: "",
    };
  return {
    principal: identity.slice(9),
    uri: identity,
    namespace: m[2] as string,
    serviceAccount: m[3] as string,
  };
}

/** Index of the first matching rule, -1 when none. */
function matchingRule(p: AuthzPolicy, conn: L4Connection, peer: Peer | undefined): number {
  for (let i = 0; i < p.rules.length; i++) {
    const rule = p.rules[i] as AuthzPolicy["rules"][number];
    if (rule.clauses.every((c) => c.matches.some((m) => matchOne(m, conn, peer)))) return i;
  }
  return -1;
}

function matchOne(m: AuthzMatch, conn: L4Connection, peer: Peer | undefined): boolean {
  return (
    field(m.namespaces, m.notNamespaces, (s) => peer !== undefined && stringMatches(s, peer.namespace)) &&
    field(m.principals, m.notPrincipals, (s) => peer !== undefined && principalMatches(s, peer)) &&
    field(
      m.serviceAccounts,
      m.notServiceAccounts,
      (sa) =>
        peer !== undefined && sa.namespace === peer.namespace && sa.serviceAccount === peer.serviceAccount,
    ) &&
    field(m.sourceIps, m.notSourceIps, (c) => cidrContains(c, conn.srcIp)) &&
    field(m.destinationIps, m.notDestinationIps, (c) => cidrContains(c, conn.dstIp)) &&
    field(m.destinationPorts, m.notDestinationPorts, (port) => port === conn.dstPort)
  );
}

/** A set positive list must match some entry; a negative list must match none. */
function field<T>(
  pos: readonly T[] | undefined,
  neg: readonly T[] | undefined,
  f: (x: T) => boolean,
): boolean {
  if (pos && pos.length > 0 && !pos.some(f)) return false;
  if (neg && neg.length > 0 && neg.some(f)) return false;
  return true;
}

function stringMatches(s: StringMatch, v: string): boolean {
  if ("exact" in s) return v === s.exact;
  if ("prefix" in s) return v.startsWith(s.prefix);
  if ("suffix" in s) return v.endsWith(s.suffix);
  return v.length > 0;
}

function principalMatches(s: StringMatch, peer: Peer): boolean {
  // Istio writes principals without the scheme; accept the full URI too.
  const scheme =
    ("exact" in s && s.exact.startsWith("spiffe://")) || ("prefix" in s && s.prefix.startsWith("spiffe://"));
  return stringMatches(s, scheme ? peer.uri : peer.principal);
}

/** Whether `ip` lies in the CIDR; false for unparsable input or a family mismatch. */
export function cidrContains(c: CidrMatch, ip: string): boolean {
  const net = ipBytes(c.address);
  const addr = ipBytes(ip);
  if (!net || !addr || net.length !== addr.length) return false;
  const bits = Math.min(c.length, net.length * 8);
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (net[i] !== addr[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((net[whole] as number) & mask) === ((addr[whole] as number) & mask);
}

/** IPv4 → 4 bytes, IPv6 → 16 bytes (IPv4-mapped IPv6 → 4 bytes). */
export function ipBytes(ip: string): number[] | undefined {
  if (ip.startsWith("::ffff:") && ip.includes(".")) ip = ip.slice(7);
  if (!ip.includes(":")) {
    const parts = ip.split(".");
    if (parts.length !== 4) return undefined;
    const out: number[] = [];
    for (const p of parts) {
      if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
      out.push(Number(p));
    }
    return out;
  }
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      const v = Number.parseInt(g, 16);
      out.push(v >> 8, v & 0xff);
    }
    return out;
  };
  const head = parseGroups(halves[0] as string);
  const tail = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 16 ? head : undefined;
  if (head.length + tail.length > 14) return undefined;
  return [...head, ...new Array<number>(16 - head.length - tail.length).fill(0), ...tail];
}

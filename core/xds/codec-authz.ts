// The edge between the model (AuthzPolicy) and the wire
// (istio.security.Authorization). Pure. Resource name `<ns>/<name>` as istiod.
import { create } from "@bufbuild/protobuf";
import { ObjectError } from "../errors/errors.js";
import {
  Action,
  type Authorization,
  AuthorizationSchema,
  type Match,
  MatchSchema,
  Scope,
  type ServiceAccountMatch,
  StringMatchSchema,
  type Address as WireCidr,
  type StringMatch as WireStringMatch,
} from "../gen/authorization_pb.js";
import {
  type AuthzMatch,
  type AuthzPolicy,
  type CidrMatch,
  policyKey,
  type StringMatch,
} from "../model/types.js";
import { ipFromBytes, ipToBytes } from "./ip-bytes.js";

/** The xDS resource name of a policy: `<ns>/<name>`. */
export function authzResourceName(p: { namespace: string; name: string }): string {
  return policyKey(p);
}

type ObjectRef = { kind: string; namespace?: string; name?: string };

function reject(obj: ObjectRef, field: string, reason: string): never {
  throw new ObjectError("XDS_REJECTED", obj, field, reason);
}

const scopeToWire: Record<AuthzPolicy["scope"], Scope> = {
  global: Scope.GLOBAL,
  namespace: Scope.NAMESPACE,
  workload: Scope.WORKLOAD_SELECTOR,
};

// ---- model → wire -------------------------------------------------------

function stringMatchToProto(m: StringMatch): WireStringMatch {
  if ("exact" in m) return create(StringMatchSchema, { matchType: { case: "exact", value: m.exact } });
  if ("prefix" in m) return create(StringMatchSchema, { matchType: { case: "prefix", value: m.prefix } });
  if ("suffix" in m) return create(StringMatchSchema, { matchType: { case: "suffix", value: m.suffix } });
  return create(StringMatchSchema, { matchType: { case: "presence", value: {} } });
}

function cidrToProto(obj: ObjectRef, field: string, c: CidrMatch): { address: Uint8Array; length: number } {
  const address =
    ipToBytes(c.address) ?? reject(obj, `${field}.address`, `"${c.address}" is not an IP address`);
  if (!Number.isInteger(c.length) || c.length < 0 || c.length > address.length * 8) {
    reject(obj, `${field}.length`, `prefix length ${c.length} out of range for ${c.address}`);
  }
  return { address, length: c.length };
}

function matchToProto(obj: ObjectRef, field: string, m: AuthzMatch): Match {
  const cidrs = (name: string, list?: CidrMatch[]) =>
    (list ?? []).map((c, i) => cidrToProto(obj, `${field}.${name}[${i}]`, c));
  const sas = (list?: { namespace: string; serviceAccount: string }[]) =>
    (list ?? []).map((s) => ({ namespace: s.namespace, serviceAccount: s.serviceAccount }));
  return create(MatchSchema, {
    namespaces: (m.namespaces ?? []).map(stringMatchToProto),
    notNamespaces: (m.notNamespaces ?? []).map(stringMatchToProto),
    principals: (m.principals ?? []).map(stringMatchToProto),
    notPrincipals: (m.notPrincipals ?? []).map(stringMatchToProto),
    serviceAccounts: sas(m.serviceAccounts),
    notServiceAccounts: sas(m.notServiceAccounts),
    sourceIps: cidrs("sourceIps", m.sourceIps),
    notSourceIps: cidrs("notSourceIps", m.notSourceIps),
    destinationIps: cidrs("destinationIps", m.destinationIps),
    notDestinationIps: cidrs("notDestinationIps", m.notDestinationIps),
    destinationPorts: [...(m.destinationPorts ?? [])],
    notDestinationPorts: [...(m.notDestinationPorts ?? [])],
  });
}

export function policyToProto(p: AuthzPolicy): Authorization {
  const obj = { kind: "AuthorizationPolicy", namespace: p.namespace, name: p.name };
  return create(AuthorizationSchema, {
    name: p.name,
    namespace: p.namespace,
    scope: scopeToWire[p.scope],
    action: p.action === "deny" ? Action.DENY : Action.ALLOW,
    dryRun: p.dryRun,
    rules: p.rules.map((r, ri) => ({
      clauses: r.clauses.map((c, ci) => ({
        matches: c.matches.map((m, mi) => matchToProto(obj, `rules[${ri}].clauses[${ci}].matches[${mi}]`, m)),
      })),
    })),
  });
}

// ---- wire → model -------------------------------------------------------

function stringMatchFromProto(obj: ObjectRef, field: string, m: WireStringMatch): StringMatch {
  switch (m.matchType.case) {
    case "exact":
      return { exact: m.matchType.value };
    case "prefix":
      return { prefix: m.matchType.value };
    case "suffix":
      return { suffix: m.matchType.value };
    case "presence":
      return { presence: true };
    default:
      return reject(obj, `${field}.match_type`, "no match type set");
  }
}

function cidrFromProto(obj: ObjectRef, field: string, c: WireCidr): CidrMatch {
  const address =
    ipFromBytes(c.address) ?? reject(obj, `${field}.address`, `${c.address.length} bytes, want 4 or 16`);
  if (c.length > c.address.length * 8)
    reject(obj, `${field}.length`, `prefix length ${c.length} exceeds ${c.address.length * 8}`);
  return { address, length: c.length };
}

function matchFromProto(obj: ObjectRef, field: string, m: Match): AuthzMatch {
  const out: AuthzMatch = {};
  const strings = (name: string, list: WireStringMatch[]) =>
    list.map((s, i) => stringMatchFromProto(obj, `${field}.${name}[${i}]`, s));
  const cidrs = (name: string, list: WireCidr[]) =>
    list.map((c, i) => cidrFromProto(obj, `${field}.${name}[${i}]`, c));
  const sas = (list: ServiceAccountMatch[]) =>
    list.map((s) => ({ namespace: s.namespace, serviceAccount: s.serviceAccount }));
  const ports = (name: string, list: number[]) =>
    list.map((p, i) =>
      p >= 1 && p <= 65535 ? p : reject(obj, `${field}.${name}[${i}]`, `port ${p} out of range`),
    );
  if (m.namespaces.length) out.namespaces = strings("namespaces", m.namespaces);
  if (m.notNamespaces.length) out.notNamespaces = strings("not_namespaces", m.notNamespaces);
  if (m.principals.length) out.principals = strings("principals", m.principals);
  if (m.notPrincipals.length) out.notPrincipals = strings("not_principals", m.notPrincipals);
  if (m.serviceAccounts.length) out.serviceAccounts = sas(m.serviceAccounts);
  if (m.notServiceAccounts.length) out.notServiceAccounts = sas(m.notServiceAccounts);
  if (m.sourceIps.length) out.sourceIps = cidrs("source_ips", m.sourceIps);
  if (m.notSourceIps.length) out.notSourceIps = cidrs("not_source_ips", m.notSourceIps);
  if (m.destinationIps.length) out.destinationIps = cidrs("destination_ips", m.destinationIps);
  if (m.notDestinationIps.length) out.notDestinationIps = cidrs("not_destination_ips", m.notDestinationIps);
  if (m.destinationPorts.length) out.destinationPorts = ports("destination_ports", m.destinationPorts);
  if (m.notDestinationPorts.length)
    out.notDestinationPorts = ports("not_destination_ports", m.notDestinationPorts);
  return out;
}

/** Wire → model. Throws ObjectError XDS_REJECTED naming the field when the resource is invalid. */
export function policyFromProto(a: Authorization): AuthzPolicy {
  const obj = { kind: "AuthorizationPolicy", namespace: a.namespace, name: a.name };
  if (!a.name) reject(obj, "name", "empty");
  if (!a.namespace) reject(obj, "namespace", "empty");
  const scope = (Object.keys(scopeToWire) as AuthzPolicy["scope"][]).find((k) => scopeToWire[k] === a.scope);
  if (scope === undefined) reject(obj, "scope", `unknown scope ${a.scope}`);
  if (a.action !== Action.ALLOW && a.action !== Action.DENY)
    reject(obj, "action", `unknown action ${a.action}`);
  return {
    name: a.name,
    namespace: a.namespace,
    scope,
    action: a.action === Action.DENY ? "deny" : "allow",
    dryRun: a.dryRun,
    rules: a.rules.map((r, ri) => ({
      clauses: r.clauses.map((c, ci) => ({
        matches: c.matches.map((m, mi) =>
          matchFromProto(obj, `rules[${ri}].clauses[${ci}].matches[${mi}]`, m),
        ),
      })),
    })),
  };
}

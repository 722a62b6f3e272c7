// SPIFFE identities of mesh workloads: spiffe://<trust-domain>/ns/<ns>/sa/<sa>,
// the form Istio puts in certificates' URI SAN. Parsing is strict because the
// result feeds authorization: anything not exactly of that shape is refused.
import { AmbitError } from "../errors/errors.js";

export interface Identity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

// SPIFFE spec: trust domain [a-z0-9._-]; path segments [A-Za-z0-9._-], not "." or "..".
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_URI_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

function invalid(field: string, value: string, reason: string): AmbitError {
  return new AmbitError(
    "INVALID_FIELD",
    `SPIFFE identity ${JSON.stringify(value)}: field ${field}: ${reason}`,
    {
      field,
      value,
    },
  );
}

function checkTrustDomain(td: string, whole: string): void {
  if (td.length === 0) throw invalid("trustDomain", whole, "is empty");
  if (td.length > MAX_TRUST_DOMAIN_LENGTH)
    throw invalid("trustDomain", whole, "is longer than 255 characters");
  if (!TRUST_DOMAIN.test(td))
    throw invalid("trustDomain", whole, "may contain only a-z, 0-9, '.', '-' and '_'");
}

function checkSegment(field: string, seg: string, whole: string): void {
  if (seg.length === 0) throw invalid(field, whole, "is empty");
  if (seg === "." || seg === "..") throw invalid(field, whole, "may not be '.' or '..'");
  if (!SEGMENT.test(seg)) throw invalid(field, whole, "may contain only A-Z, a-z, 0-9, '.', '-' and '_'");
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`; throws AmbitError(INVALID_FIELD) on a part that could not round-trip. */
export function spiffeId(id: Identity): string {
  const uri = `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
  checkTrustDomain(id.trustDomain, uri);
  checkSegment("namespace", id.namespace, uri);
  checkSegment("serviceAccount", id.serviceAccount, uri);
  return uri;
}

/** Strict inverse of spiffeId: exactly `spiffe://td/ns/X/sa/Y`, nothing else. */
export function parseSpiffeId(uri: string): Identity {
  if (typeof uri !== "string") throw invalid("uri", String(uri), "is not a string");
  if (uri.length > MAX_URI_LENGTH)
    throw invalid("uri", `${uri.slice(0, 64)}...`, "is longer than 2048 characters");
  const prefix = "spiffe://";
  if (!uri.startsWith(prefix)) throw invalid("scheme", uri, "must start with spiffe:// (lower case)");
  const rest = uri.slice(prefix.length);
  const slash = rest.indexOf("/");
  if (slash < 0) throw invalid("path", uri, "is missing (want /ns/<ns>/sa/<sa>)");
  const td = rest.slice(0, slash);
  // Ports, user info, query and fragment are all forbidden by the SPIFFE spec;
  // the character classes below reject ':', '@', '?', '#' and '%'.
  checkTrustDomain(td, uri);
  const parts = rest.slice(slash + 1).split("/");
  if (parts.length !== 4 || parts[0] !== "ns" || parts[2] !== "sa") {
    throw invalid("path", uri, "must be exactly /ns/<namespace>/sa/<serviceAccount>");
  }
  const [, namespace, , serviceAccount] = parts as [string, string, string, string];
  checkSegment("namespace", namespace, uri);
  checkSegment("serviceAccount", serviceAccount, uri);
  return { trustDomain: td, namespace, serviceAccount };
}

/** parseSpiffeId that returns undefined instead of throwing (for peer certificates). */
export function tryParseSpiffeId(uri: string): Identity | undefined {
  try {
    return parseSpiffeId(uri);
  } catch {
    return undefined;
  }
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return (
    a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount
  );
}

/** Accepts either form; returns the URI. */
export function identityUri(id: Identity | string): string {
  return typeof id === "string" ? spiffeId(parseSpiffeId(id)) : spiffeId(id);
}

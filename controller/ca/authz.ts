// Which identity a CSR asks for, and whether the calling node may have it.
// Pure decisions: the gRPC service (service.ts) does the I/O around them.
import { AmbitError } from "../../core/errors/errors.js";
import { type Identity, parseSpiffeId, spiffeId } from "../../core/identity/spiffe.js";

export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
}

export type RefusalReason =
  | "unauthenticated"
  | "bad_request"
  | "no_identity"
  | "ambiguous_identity"
  | "invalid_identity"
  | "identity_mismatch"
  | "wrong_trust_domain"
  | "not_on_node"
  | "ca_error";

export type Decision<T> = ({ ok: true } & T) | { ok: false; reason: RefusalReason; message: string };

/** The field of IstioCertificateRequest.metadata in which Istio's ztunnel names the identity it asks for. */
export const IMPERSONATED_IDENTITY = "ImpersonatedIdentity";

/**
 * The identity a request asks for: the `ImpersonatedIdentity` metadata when
 * present (Istio's ztunnel), else the CSR's single URI SAN. When both are
 * present they must agree: a CSR that asks for something else is refused
 * rather than silently re-targeted.
 */
export function requestedIdentity(
  csrUris: readonly string[],
  impersonated: string | undefined,
): Decision<{ identity: Identity; uri: string }> {
  let uri: string;
  if (impersonated !== undefined && impersonated !== "") {
    uri = impersonated;
    const other = csrUris.find((u) => u !== impersonated);
    if (other !== undefined) {
      return {
        ok: false,
        reason: "identity_mismatch",
        message: `the CSR asks for ${other} but ${IMPERSONATED_IDENTITY} is ${impersonated}`,
      };
    }
  } else {
    if (csrUris.length === 0)
      return {
        ok: false,
        reason: "no_identity",
        message: `the CSR has no URI SAN and no ${IMPERSONATED_IDENTITY} was given`,
      };
    if (csrUris.length > 1)
      return {
        ok: false,
        reason: "ambiguous_identity",
        message: `the CSR asks for ${csrUris.length} URI SANs; one identity per certificate`,
      };
    uri = csrUris[0] as string;
  }
  try {
    const identity = parseSpiffeId(uri);
    return { ok: true, identity, uri: spiffeId(identity) };
  } catch (e) {
    return {
      ok: false,
      reason: "invalid_identity",
      message: e instanceof AmbitError ? e.message : String(e),
    };
  }
}

/**
 * May the caller on `callerNode` have a certificate for `requested`? Only if
 * the identity is of this mesh's trust domain and a pod with that namespace
 * and service account runs on that node.
 */
export function authorizeIdentity(
  callerNode: string,
  requested: Identity,
  podsOnNode: (node: string) => readonly PodIdentity[],
  trustDomain: string,
): Decision<Record<never, never>> {
  const uri = `spiffe://${requested.trustDomain}/ns/${requested.namespace}/sa/${requested.serviceAccount}`;
  if (requested.trustDomain !== trustDomain) {
    return {
      ok: false,
      reason: "wrong_trust_domain",
      message: `identity ${uri} is not in trust domain ${trustDomain} (node ${callerNode})`,
    };
  }
  for (const p of podsOnNode(callerNode)) {
    if (p.namespace === requested.namespace && p.serviceAccount === requested.serviceAccount)
      return { ok: true };
  }
  return {
    ok: false,
    reason: "not_on_node",
    message: `identity ${uri} is not running on node ${callerNode}: no pod of service account ${requested.namespace}/${requested.serviceAccount} there`,
  };
}

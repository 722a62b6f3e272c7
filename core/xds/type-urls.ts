// xDS type URLs. The Istio ones are exactly what Istio's ztunnel subscribes
// to, so either side of ambit can be swapped for the Istio part.

export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** istio.workload.Address: a Workload or a Service (workload.proto). */
export const ADDRESS_TYPE = "type.googleapis.com/istio.workload.Address";

/** istio.security.Authorization: an L4 policy (authorization.proto). */
export const AUTHORIZATION_TYPE = "type.googleapis.com/istio.security.Authorization";

/** Prefix of ambit's own resource types (core/proto/ambit), e.g. waypoint configuration. */
export const AMBIT_TYPE_PREFIX = "type.googleapis.com/ambit.v1.";

/** The short name of a type URL (`istio.workload.Address`), for logs and metric labels. */
export function shortTypeName(typeUrl: string): string {
  return typeUrl.startsWith(TYPE_URL_PREFIX) ? typeUrl.slice(TYPE_URL_PREFIX.length) : typeUrl;
}

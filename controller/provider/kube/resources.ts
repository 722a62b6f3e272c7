// The API resources the kube provider watches, as data: where each kind is
// listed and watched, and which ClusterSnapshot field it fills.
import type { AnyObject, ClusterSnapshot } from "../objects.js";

export interface WatchedResource {
  kind: AnyObject["kind"];
  /** "" for the core group. */
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  field: keyof Omit<ClusterSnapshot, "sources">;
  /** A CRD that may not be installed: a 404 means "none yet", retried later, not an error. */
  optional: boolean;
}

const core = (
  kind: WatchedResource["kind"],
  plural: string,
  field: WatchedResource["field"],
  namespaced = true,
): WatchedResource => ({
  kind,
  group: "",
  version: "v1",
  plural,
  namespaced,
  field,
  optional: false,
});

const crd = (
  group: string,
  version: string,
  kind: WatchedResource["kind"],
  plural: string,
  field: WatchedResource["field"],
  namespaced = true,
): WatchedResource => ({
  kind,
  group,
  version,
  plural,
  namespaced,
  field,
  optional: true,
});

export const GATEWAY_GROUP = "gateway.networking.k8s.io";
export const AMBIT_GROUP = "ambit.dev";

/** Everything the translator reads from a cluster. Workload objects (Deployment...) are not watched: the cluster's own controllers expand them into Pods. */
export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  core("Namespace", "namespaces", "namespaces", false),
  core("Node", "nodes", "nodes", false),
  core("ServiceAccount", "serviceaccounts", "serviceAccounts"),
  core("Pod", "pods", "pods"),
  core("Service", "services", "services"),
  {
    kind: "EndpointSlice",
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    namespaced: true,
    field: "endpointSlices",
    optional: false,
  },
  crd(GATEWAY_GROUP, "v1", "GatewayClass", "gatewayclasses", "gatewayClasses", false),
  crd(GATEWAY_GROUP, "v1", "Gateway", "gateways", "gateways"),
  crd(GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes", "httpRoutes"),
  crd(GATEWAY_GROUP, "v1", "GRPCRoute", "grpcroutes", "grpcRoutes"),
  crd(AMBIT_GROUP, "v1alpha1", "AuthorizationPolicy", "authorizationpolicies", "authorizationPolicies"),
  crd(AMBIT_GROUP, "v1alpha1", "PeerAuthentication", "peerauthentications", "peerAuthentications"),
  crd(AMBIT_GROUP, "v1alpha1", "RequestAuthentication", "requestauthentications", "requestAuthentications"),
  crd(AMBIT_GROUP, "v1alpha1", "FaultInjection", "faultinjections", "faultInjections"),
  crd(AMBIT_GROUP, "v1alpha1", "TrafficPolicy", "trafficpolicies", "trafficPolicies"),
];

export function apiVersionOf(r: Pick<WatchedResource, "group" | "version">): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** The collection path across all namespaces (or of a cluster-scoped kind). */
export function collectionPath(r: Pick<WatchedResource, "group" | "version" | "plural">): string {
  return `${r.group ? `/apis/${r.group}` : "/api"}/${r.version}/${r.plural}`;
}

/** The path of one object. */
export function objectPath(
  r: Pick<WatchedResource, "group" | "version" | "plural" | "namespaced">,
  name: string,
  namespace?: string,
): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = r.namespaced ? `/namespaces/${encodeURIComponent(namespace ?? "default")}` : "";
  return `${base}${ns}/${r.plural}/${encodeURIComponent(name)}`;
}

export function resourceByKind(kind: string): WatchedResource | undefined {
  return WATCHED_RESOURCES.find((r) => r.kind === kind);
}

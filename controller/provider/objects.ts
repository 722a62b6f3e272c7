// The Kubernetes objects ambit reads, as minimal typed shapes. Providers
// (local YAML, the Kubernetes API) produce these; the pure translator reads
// only these. Fields follow the upstream APIs (core/v1, apps/v1, batch/v1,
// gateway.networking.k8s.io/v1 standard + experimental, and ambit.dev/v1alpha1
// which mirrors Istio's security/networking shapes), so YAML written for those
// APIs parses as-is. Only what ambit uses is typed; unknown fields are kept
// by the providers but invisible here.

export * from "./objects-ambit.js";
export * from "./objects-gateway.js";
export * from "./objects-kube.js";

import type {
  AuthorizationPolicy,
  FaultInjection,
  PeerAuthentication,
  RequestAuthentication,
  TrafficPolicy,
} from "./objects-ambit.js";
import type { Gateway, GatewayClass, GRPCRoute, HTTPRoute } from "./objects-gateway.js";
import type {
  DaemonSet,
  Deployment,
  EndpointSlice,
  Job,
  Namespace,
  Node,
  Pod,
  ReplicaSet,
  Service,
  ServiceAccount,
  StatefulSet,
} from "./objects-kube.js";

// ---------- the translator's input ----------

export type AnyObject =
  | Namespace
  | ServiceAccount
  | Pod
  | Service
  | EndpointSlice
  | Node
  | Deployment
  | ReplicaSet
  | StatefulSet
  | DaemonSet
  | Job
  | GatewayClass
  | Gateway
  | HTTPRoute
  | GRPCRoute
  | AuthorizationPolicy
  | PeerAuthentication
  | RequestAuthentication
  | FaultInjection
  | TrafficPolicy;

/**
 * Everything the translator reads, by kind. Pods are already expanded from
 * their workloads (the local provider does it as Kubernetes would) and carry
 * the live facts (status.podIP, spec.nodeName, Ready condition); Nodes carry
 * their addresses in status.addresses. Arrays are sorted by namespace/name.
 */
export interface ClusterSnapshot {
  namespaces: Namespace[];
  serviceAccounts: ServiceAccount[];
  pods: Pod[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  nodes: Node[];
  deployments: Deployment[];
  replicaSets: ReplicaSet[];
  statefulSets: StatefulSet[];
  daemonSets: DaemonSet[];
  jobs: Job[];
  gatewayClasses: GatewayClass[];
  gateways: Gateway[];
  httpRoutes: HTTPRoute[];
  grpcRoutes: GRPCRoute[];
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
  requestAuthentications: RequestAuthentication[];
  faultInjections: FaultInjection[];
  trafficPolicies: TrafficPolicy[];
  /** `Kind ns/name` (see objectRef) → the file it came from, when known; errors name it. */
  sources?: Record<string, string>;
}

/** Facts the local runner learns at run time (pod IPs, nodes, readiness). */
export interface LiveFacts {
  /** key `ns/name` */
  pods: Map<string, { ip?: string; node?: string; ready?: boolean }>;
  nodes: Map<string, { address: string }>;
}

/** `Kind ns/name` (or `Kind name` for cluster-scoped objects). */
export function objectRef(o: { kind: string; metadata: { namespace?: string; name: string } }): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
}

/** An empty snapshot, to build on. */
export function emptySnapshot(): ClusterSnapshot {
  return {
    namespaces: [],
    serviceAccounts: [],
    pods: [],
    services: [],
    endpointSlices: [],
    nodes: [],
    deployments: [],
    replicaSets: [],
    statefulSets: [],
    daemonSets: [],
    jobs: [],
    gatewayClasses: [],
    gateways: [],
    httpRoutes: [],
    grpcRoutes: [],
    authorizationPolicies: [],
    peerAuthentications: [],
    requestAuthentications: [],
    faultInjections: [],
    trafficPolicies: [],
  };
}

/** Snapshot field holding each kind the providers know. */
export const SNAPSHOT_FIELD_BY_KIND: Record<AnyObject["kind"], keyof Omit<ClusterSnapshot, "sources">> = {
  Namespace: "namespaces",
  ServiceAccount: "serviceAccounts",
  Pod: "pods",
  Service: "services",
  EndpointSlice: "endpointSlices",
  Node: "nodes",
  Deployment: "deployments",
  ReplicaSet: "replicaSets",
  StatefulSet: "statefulSets",
  DaemonSet: "daemonSets",
  Job: "jobs",
  GatewayClass: "gatewayClasses",
  Gateway: "gateways",
  HTTPRoute: "httpRoutes",
  GRPCRoute: "grpcRoutes",
  AuthorizationPolicy: "authorizationPolicies",
  PeerAuthentication: "peerAuthentications",
  RequestAuthentication: "requestAuthentications",
  FaultInjection: "faultInjections",
  TrafficPolicy: "trafficPolicies",
};

/** The API group/version each kind is accepted under (several for kinds with more than one served version). */
export const API_VERSIONS_BY_KIND: Record<AnyObject["kind"], string[]> = {
  Namespace: ["v1"],
  ServiceAccount: ["v1"],
  Pod: ["v1"],
  Service: ["v1"],
  EndpointSlice: ["discovery.k8s.io/v1"],
  Node: ["v1"],
  Deployment: ["apps/v1"],
  ReplicaSet: ["apps/v1"],
  StatefulSet: ["apps/v1"],
  DaemonSet: ["apps/v1"],
  Job: ["batch/v1"],
  GatewayClass: ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
  Gateway: ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
  HTTPRoute: ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
  GRPCRoute: ["gateway.networking.k8s.io/v1"],
  AuthorizationPolicy: ["ambit.dev/v1alpha1"],
  PeerAuthentication: ["ambit.dev/v1alpha1"],
  RequestAuthentication: ["ambit.dev/v1alpha1"],
  FaultInjection: ["ambit.dev/v1alpha1"],
  TrafficPolicy: ["ambit.dev/v1alpha1"],
};

/** Kinds that live in a namespace (the rest are cluster-scoped). */
export const CLUSTER_SCOPED_KINDS: ReadonlySet<string> = new Set(["Namespace", "Node", "GatewayClass"]);

/** Labels and names ambit reads. */
export const LABEL_DATAPLANE_MODE = "ambit.dev/dataplane-mode";
export const LABEL_USE_WAYPOINT = "ambit.dev/use-waypoint";
export const WAYPOINT_GATEWAY_CLASS = "ambit-waypoint";
/**
 * spec.controllerName of that GatewayClass, and the controllerName ambit writes
 * in every RouteParentStatus (Gateway API requires the two to be equal).
 */
export const WAYPOINT_CONTROLLER_NAME = "ambit.dev/mesh-controller";

// The Kubernetes objects ambit reads, as minimal typed shapes. Providers
// (local YAML, the Kubernetes API) produce these; the pure translator reads
// only these. Fields follow the upstream APIs (core/v1, apps/v1, batch/v1,
// gateway.networking.k8s.io/v1 standard + experimental, and ambit.dev/v1alpha1
// which mirrors Istio's security/networking shapes), so YAML written for those
// APIs parses as-is. Only what ambit uses is typed; unknown fields are kept
// by the providers but invisible here.

// ---------- common ----------

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
  generateName?: string;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[];
}

/** Any object with a kind and metadata. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

// ---------- core/v1 ----------

export interface Namespace extends KubeObject {
  kind: "Namespace";
}

export interface ServiceAccount extends KubeObject {
  kind: "ServiceAccount";
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
  };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: "TCP" | "UDP" | "SCTP";
  hostPort?: number;
}

export interface Probe {
  exec?: { command: string[] };
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: "HTTP" | "HTTPS"; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  workingDir?: string;
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
}

export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  serviceAccountName?: string;
  /** Deprecated alias of serviceAccountName, still honoured by Kubernetes. */
  serviceAccount?: string;
  hostNetwork?: boolean;
  restartPolicy?: "Always" | "OnFailure" | "Never";
  hostname?: string;
  subdomain?: string;
  initContainers?: Container[];
  containers: Container[];
  terminationGracePeriodSeconds?: number;
}

export interface PodStatus {
  phase?: "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  conditions?: Condition[];
}

export interface Pod extends KubeObject {
  kind: "Pod";
  spec: PodSpec;
  status?: PodStatus;
}

export interface PodTemplateSpec {
  metadata?: Partial<ObjectMeta>;
  spec: PodSpec;
}

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: "TCP" | "UDP" | "SCTP";
  appProtocol?: string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  kind: "Service";
  spec: {
    type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePortSpec[];
    selector?: Record<string, string>;
    externalName?: string;
    publishNotReadyAddresses?: boolean;
  };
}

export interface EndpointSlice extends KubeObject {
  kind: "EndpointSlice";
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    targetRef?: { kind: string; namespace?: string; name: string; uid?: string };
  }[];
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
}

export interface Node extends KubeObject {
  kind: "Node";
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: {
    addresses?: { type: "InternalIP" | "ExternalIP" | "Hostname" | string; address: string }[];
    conditions?: Condition[];
  };
}

// ---------- apps/v1, batch/v1 ----------

export interface Deployment extends KubeObject {
  kind: "Deployment";
  spec: { replicas?: number; selector: LabelSelector; template: PodTemplateSpec };
}

export interface ReplicaSet extends KubeObject {
  kind: "ReplicaSet";
  spec: { replicas?: number; selector: LabelSelector; template: PodTemplateSpec };
}

export interface StatefulSet extends KubeObject {
  kind: "StatefulSet";
  spec: { replicas?: number; selector: LabelSelector; serviceName?: string; template: PodTemplateSpec };
}

export interface DaemonSet extends KubeObject {
  kind: "DaemonSet";
  spec: { selector: LabelSelector; template: PodTemplateSpec };
}

export interface Job extends KubeObject {
  kind: "Job";
  spec: { parallelism?: number; completions?: number; backoffLimit?: number; template: PodTemplateSpec };
}

export type WorkloadObject = Deployment | ReplicaSet | StatefulSet | DaemonSet | Job;

// ---------- gateway.networking.k8s.io/v1 ----------

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
}

export interface LocalObjectReference {
  group: string;
  kind: string;
  name: string;
}

export interface GatewayClass extends KubeObject {
  kind: "GatewayClass";
  spec: { controllerName: string; description?: string; parametersRef?: LocalObjectReference & { namespace?: string } };
  status?: { conditions?: Condition[] };
}

export interface GatewayListener {
  name: string;
  hostname?: string;
  port: number;
  /** HTTP, HTTPS, TLS, TCP, UDP, or an implementation-specific one such as HBONE. */
  protocol: string;
  tls?: { mode?: "Terminate" | "Passthrough"; certificateRefs?: { group?: string; kind?: string; name: string; namespace?: string }[] };
  allowedRoutes?: {
    namespaces?: { from?: "All" | "Same" | "Selector"; selector?: LabelSelector };
    kinds?: { group?: string; kind: string }[];
  };
}

export interface Gateway extends KubeObject {
  kind: "Gateway";
  spec: {
    gatewayClassName: string;
    listeners: GatewayListener[];
    addresses?: { type?: string; value: string }[];
    infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  };
  status?: {
    addresses?: { type?: string; value: string }[];
    conditions?: Condition[];
    listeners?: { name: string; attachedRoutes: number; supportedKinds: { group?: string; kind: string }[]; conditions: Condition[] }[];
  };
}

export interface HTTPHeaderMatch {
  type?: "Exact" | "RegularExpression";
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path?: { type?: "Exact" | "PathPrefix" | "RegularExpression"; value?: string };
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPHeaderMatch[];
  method?: "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH";
}

export interface HTTPHeaderFilter {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export interface HTTPPathModifier {
  type: "ReplaceFullPath" | "ReplacePrefixMatch";
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRequestMirrorFilter {
  backendRef: BackendObjectReference;
  /** 0-100 (v1.2+). */
  percent?: number;
  fraction?: { numerator: number; denominator?: number };
}

export interface HTTPRouteFilter {
  type:
    | "RequestHeaderModifier"
    | "ResponseHeaderModifier"
    | "RequestMirror"
    | "RequestRedirect"
    | "URLRewrite"
    | "ExtensionRef"
    | "CORS"
    | "ExternalAuth";
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestMirror?: HTTPRequestMirrorFilter;
  requestRedirect?: {
    scheme?: "http" | "https";
    hostname?: string;
    path?: HTTPPathModifier;
    port?: number;
    statusCode?: 301 | 302 | 303 | 307 | 308;
  };
  urlRewrite?: { hostname?: string; path?: HTTPPathModifier };
  extensionRef?: LocalObjectReference;
  cors?: {
    allowOrigins?: string[];
    allowCredentials?: boolean;
    allowMethods?: string[];
    allowHeaders?: string[];
    exposeHeaders?: string[];
    maxAge?: number;
  };
}

export interface HTTPBackendRef extends BackendObjectReference {
  weight?: number;
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  /** Gateway API durations, e.g. "10s", "500ms". */
  timeouts?: { request?: string; backendRequest?: string };
  /** Experimental channel. */
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface HTTPRoute extends KubeObject {
  kind: "HTTPRoute";
  spec: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: HTTPRouteRule[] };
  status?: { parents: RouteParentStatus[] };
}

export interface GRPCRouteMatch {
  method?: { type?: "Exact" | "RegularExpression"; service?: string; method?: string };
  headers?: HTTPHeaderMatch[];
}

export interface GRPCRouteFilter {
  type: "RequestHeaderModifier" | "ResponseHeaderModifier" | "RequestMirror" | "ExtensionRef";
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestMirror?: HTTPRequestMirrorFilter;
  extensionRef?: LocalObjectReference;
}

export interface GRPCBackendRef extends BackendObjectReference {
  weight?: number;
  filters?: GRPCRouteFilter[];
}

export interface GRPCRouteRule {
  name?: string;
  matches?: GRPCRouteMatch[];
  filters?: GRPCRouteFilter[];
  backendRefs?: GRPCBackendRef[];
}

export interface GRPCRoute extends KubeObject {
  kind: "GRPCRoute";
  spec: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: GRPCRouteRule[] };
  status?: { parents: RouteParentStatus[] };
}

// ---------- ambit.dev/v1alpha1 (Istio shapes) ----------

export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

export interface AuthorizationSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface AuthorizationOperation {
  hosts?: string[];
  notHosts?: string[];
  /** Istio types ports as strings; numbers are accepted too. */
  ports?: (string | number)[];
  notPorts?: (string | number)[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface AuthorizationCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthorizationRule {
  from?: { source: AuthorizationSource }[];
  to?: { operation: AuthorizationOperation }[];
  when?: AuthorizationCondition[];
}

export interface AuthorizationPolicy extends KubeObject {
  kind: "AuthorizationPolicy";
  spec: {
    selector?: WorkloadSelector;
    targetRef?: PolicyTargetReference;
    targetRefs?: PolicyTargetReference[];
    action?: "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";
    provider?: { name: string };
    rules?: AuthorizationRule[];
  };
  status?: { conditions?: Condition[] };
}

export type MtlsMode = "UNSET" | "DISABLE" | "PERMISSIVE" | "STRICT";

export interface PeerAuthentication extends KubeObject {
  kind: "PeerAuthentication";
  spec: {
    selector?: WorkloadSelector;
    mtls?: { mode?: MtlsMode };
    portLevelMtls?: Record<string, { mode?: MtlsMode }>;
  };
  status?: { conditions?: Condition[] };
}

export interface JwtRule {
  issuer: string;
  audiences?: string[];
  jwksUri?: string;
  /** Inline JWKS (a JSON string), as in Istio. */
  jwks?: string;
  fromHeaders?: { name: string; prefix?: string }[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: { header: string; claim: string }[];
  timeout?: string;
}

export interface RequestAuthentication extends KubeObject {
  kind: "RequestAuthentication";
  spec: {
    selector?: WorkloadSelector;
    targetRef?: PolicyTargetReference;
    targetRefs?: PolicyTargetReference[];
    jwtRules?: JwtRule[];
  };
  status?: { conditions?: Condition[] };
}

export interface Percent {
  /** 0-100, fractional allowed. */
  value: number;
}

/** VirtualService fault shape; referenced by an HTTPRoute/GRPCRoute ExtensionRef filter. */
export interface FaultInjection extends KubeObject {
  kind: "FaultInjection";
  spec: {
    delay?: { fixedDelay: string; percentage?: Percent };
    abort?: { httpStatus?: number; grpcStatus?: string; percentage?: Percent };
  };
  status?: { conditions?: Condition[] };
}

/** DestinationRule's trafficPolicy, targeting a Service, plus a local rate limit. */
export interface TrafficPolicy extends KubeObject {
  kind: "TrafficPolicy";
  spec: {
    targetRef?: PolicyTargetReference;
    targetRefs?: PolicyTargetReference[];
    loadBalancer?: {
      simple?: "UNSPECIFIED" | "LEAST_REQUEST" | "ROUND_ROBIN" | "RANDOM" | "PASSTHROUGH" | "LEAST_CONN";
      consistentHash?: {
        httpHeaderName?: string;
        httpCookie?: { name: string; path?: string; ttl?: string };
        useSourceIp?: boolean;
        httpQueryParameterName?: string;
        ringHash?: { minimumRingSize?: number };
        maglev?: { tableSize?: number };
      };
    };
    connectionPool?: {
      tcp?: { maxConnections?: number; connectTimeout?: string; idleTimeout?: string; maxConnectionDuration?: string };
      http?: {
        http1MaxPendingRequests?: number;
        http2MaxRequests?: number;
        maxRequestsPerConnection?: number;
        maxRetries?: number;
        idleTimeout?: string;
        maxConcurrentStreams?: number;
      };
    };
    outlierDetection?: {
      consecutive5xxErrors?: number;
      consecutiveGatewayErrors?: number;
      interval?: string;
      baseEjectionTime?: string;
      maxEjectionPercent?: number;
      minHealthPercent?: number;
    };
    /** Local (per-proxy) token bucket, as Envoy's local_ratelimit. */
    rateLimit?: { tokenBucket: { maxTokens: number; tokensPerFill?: number; fillInterval: string } };
  };
  status?: { conditions?: Condition[] };
}

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

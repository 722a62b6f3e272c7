// The waypoint's configuration model: what one waypoint needs to route and
// police the traffic of the services that use it. The controller's translator
// (controller/translate/waypoint*.ts) produces it from Gateway API and ambit.dev
// objects; waypoint/config-codec.ts carries it over xDS as ambit.v1.WaypointService
// (one resource per service); the waypoint compiles it once per update.
//
// Durations are milliseconds, percentages are 0..100 (fractions converted at the
// edge), and lists that are ordered say so.

/** How the waypoint speaks to a service port: http (HTTP/1.1, h2c sniffed), http2 (h2c), grpc, or tcp (passthrough). */
export type WaypointProtocol = "http" | "http2" | "grpc" | "tcp";

export interface WaypointPort {
  port: number;
  protocol: WaypointProtocol;
  name?: string;
}

/** One resource per service that uses the waypoint. */
export interface WaypointService {
  /** `<ns>/<hostname>`, the same key as MeshService.key. */
  key: string;
  /** `<ns>/<name>` of the waypoint Gateway serving it (a waypoint ignores other waypoints' services). */
  gateway?: string;
  name: string;
  namespace: string;
  hostname: string;
  vips: string[];
  ports: WaypointPort[];
  /** Ordered by Gateway API precedence (the translator sorts); the first match wins. */
  routes: WaypointRoute[];
  /** Clusters the routes and mirrors name, each with its endpoints. */
  clusters: WaypointCluster[];
  /** Local rate limit for requests to this service. */
  rateLimit?: RateLimitPolicy;
  /** L7 authorization, evaluated after JWT validation. */
  authz: L7AuthzPolicy[];
  /** RequestAuthentication rules that apply to this service. */
  jwtRules: JwtRule[];
}

// ---------- routes ----------

export type PathMatch =
  | { type: "Exact"; value: string }
  | { type: "PathPrefix"; value: string }
  | { type: "RegularExpression"; value: string };

export interface ValueMatch {
  type: "Exact" | "RegularExpression";
  name: string;
  value: string;
}

export interface GrpcMethodMatch {
  type: "Exact" | "RegularExpression";
  service?: string;
  method?: string;
}

/** All set fields must match. An empty match matches every request of the route's kind. */
export interface RouteMatch {
  path?: PathMatch;
  headers?: ValueMatch[];
  queryParams?: ValueMatch[];
  method?: string;
  grpc?: GrpcMethodMatch;
}

export interface HeaderModifier {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export type PathModifier =
  | { type: "ReplaceFullPath"; value: string }
  | { type: "ReplacePrefixMatch"; value: string };

export interface CorsPolicy {
  /** Exact origins, `*`, or wildcard hosts like `https://*.example.com`. */
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
  allowCredentials?: boolean;
}

export interface FaultPolicy {
  delay?: { fixedDelayMs: number; percent: number };
  /** httpStatus for HTTP, grpcStatus (a gRPC code number) for gRPC; a gRPC request with only httpStatus gets it mapped. */
  abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
}

export type RouteFilter =
  | { type: "RequestHeaderModifier"; modifier: HeaderModifier }
  | { type: "ResponseHeaderModifier"; modifier: HeaderModifier }
  | { type: "URLRewrite"; hostname?: string; path?: PathModifier }
  | {
      type: "RequestRedirect";
      scheme?: string;
      hostname?: string;
      port?: number;
      path?: PathModifier;
      statusCode: number;
    }
  | { type: "RequestMirror"; cluster: string; percent: number }
  | { type: "CORS"; cors: CorsPolicy }
  | { type: "Fault"; fault: FaultPolicy };

export type RouteFilterType = RouteFilter["type"];

export interface WeightedCluster {
  /** Name of a WaypointCluster in the same service resource. */
  cluster: string;
  weight: number;
  /** Filters that apply only when this backend is picked. */
  filters?: RouteFilter[];
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  attempts: number;
  /** HTTP status codes that are retried (connect failures always are). */
  codes: number[];
  /** gRPC status codes retried when a response is trailers-only. */
  grpcCodes: number[];
  backoffMs: number;
}

export interface RouteTimeouts {
  /** The whole request, retries included → 504. */
  requestMs?: number;
  /** One attempt to a backend → 504 (retried if 504 is a retry code). */
  backendRequestMs?: number;
}

export interface WaypointRoute {
  /** `<kind>/<ns>/<name>/rule/<i>/match/<j>`: names the object, rule and match it came from. */
  name: string;
  kind: "http" | "grpc";
  match: RouteMatch;
  filters: RouteFilter[];
  /** Empty with no redirect filter → 500 (Gateway API: no backends). */
  backends: WeightedCluster[];
  timeouts?: RouteTimeouts;
  retry?: RetryPolicy;
}

// ---------- clusters ----------

export interface WaypointEndpoint {
  ip: string;
  port: number;
  weight?: number;
  /** SPIFFE id the endpoint's HBONE peer must present (its workload's identity). */
  identity?: string;
  /** The workload (owner name) and namespace behind the endpoint: metric labels. */
  workload?: string;
  namespace?: string;
}

export type LoadBalancer =
  | { type: "ROUND_ROBIN" }
  | { type: "LEAST_REQUEST" }
  | { type: "RANDOM" }
  | { type: "CONSISTENT_HASH"; header?: string; cookie?: string; sourceIp?: boolean };

export interface ConnectionPoolPolicy {
  /** Concurrent upstream connections (HTTP/1.1: concurrent requests) for the cluster. */
  maxConnections?: number;
  /** Requests waiting for a connection beyond maxConnections; more → 503. */
  maxPendingRequests?: number;
  /** Requests per upstream connection before it is closed. */
  maxRequestsPerConnection?: number;
}

export interface OutlierDetectionPolicy {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface ClusterPolicy {
  loadBalancer?: LoadBalancer;
  connectionPool?: ConnectionPoolPolicy;
  outlierDetection?: OutlierDetectionPolicy;
}

export interface WaypointCluster {
  /** `<ns>/<hostname>:<port>` */
  name: string;
  /** Service key of the backend. */
  service: string;
  port: number;
  protocol: WaypointProtocol;
  endpoints: WaypointEndpoint[];
  policy?: ClusterPolicy;
}

// ---------- policy ----------

/** Token bucket: maxTokens, refilled by tokensPerFill every fillIntervalMs. */
export interface RateLimitPolicy {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

/**
 * Istio's string match syntax: exact, `prefix*`, `*suffix`, or `*`.
 * Lists match when any entry matches; `not*` lists negate.
 */
export interface L7Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
}

export interface L7Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: number[];
  notPorts?: number[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** `key` as Istio: request.headers[x], source.namespace, source.principal, request.auth.claims[c], request.auth.principal, request.auth.audiences, request.auth.presenter, source.ip, destination.port. */
export interface L7Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface L7AuthzRule {
  from: L7Source[];
  to: L7Operation[];
  when: L7Condition[];
}

export interface L7AuthzPolicy {
  /** `<ns>/<name>` */
  name: string;
  action: "ALLOW" | "DENY" | "AUDIT";
  /** No rules: ALLOW matches nothing, DENY matches nothing (Istio semantics for an empty rule list). */
  rules: L7AuthzRule[];
}

export interface JwtRule {
  issuer: string;
  audiences: string[];
  /** Inline JWKS JSON. */
  jwks?: string;
  /** `https?://...` fetched and cached, or `file://...` read. */
  jwksUri?: string;
  /** Headers carrying the token; default Authorization: Bearer. */
  fromHeaders?: { name: string; prefix?: string }[];
  fromParams?: string[];
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: { header: string; claim: string }[];
}

export interface WaypointConfig {
  services: WaypointService[];
}

/** Istio's standard gRPC code names, for the codec and the translator. */
export const grpcCodes: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

export function clusterName(serviceKey: string, port: number): string {
  return `${serviceKey}:${port}`;
}

// Gateway API (gateway.networking.k8s.io/v1, standard + experimental) shapes ambit reads (see objects.ts).
import type { Condition, KubeObject, LabelSelector } from "./objects-kube.js";

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
  spec: {
    controllerName: string;
    description?: string;
    parametersRef?: LocalObjectReference & { namespace?: string };
  };
  status?: { conditions?: Condition[] };
}

export interface GatewayListener {
  name: string;
  hostname?: string;
  port: number;
  /** HTTP, HTTPS, TLS, TCP, UDP, or an implementation-specific one such as HBONE. */
  protocol: string;
  tls?: {
    mode?: "Terminate" | "Passthrough";
    certificateRefs?: { group?: string; kind?: string; name: string; namespace?: string }[];
  };
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
    listeners?: {
      name: string;
      attachedRoutes: number;
      supportedKinds: { group?: string; kind: string }[];
      conditions: Condition[];
    }[];
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

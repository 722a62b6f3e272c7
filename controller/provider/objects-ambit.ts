// ambit.dev/v1alpha1 shapes (Istio's security/networking shapes) ambit reads (see objects.ts).
import type { Condition, KubeObject } from "./objects-kube.js";

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
      tcp?: {
        maxConnections?: number;
        connectTimeout?: string;
        idleTimeout?: string;
        maxConnectionDuration?: string;
      };
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

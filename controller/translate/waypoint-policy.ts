// ambit.dev policies a waypoint enforces, converted to the waypoint model:
// FaultInjection (via an ExtensionRef filter), TrafficPolicy (per target
// Service: cluster policy and a local rate limit), RequestAuthentication and
// AuthorizationPolicy with targetRefs (to a Service or to the waypoint
// Gateway). Invalid values throw PolicyError naming the field; the caller
// reports it and skips that policy.
import type {
  ClusterPolicy,
  FaultPolicy,
  JwtRule,
  L7AuthzPolicy,
  RateLimitPolicy,
} from "../../core/model/waypoint.js";
import { grpcCodes } from "../../core/model/waypoint.js";
import type {
  AuthorizationPolicy,
  FaultInjection,
  PolicyTargetReference,
  RequestAuthentication,
  TrafficPolicy,
} from "../provider/objects.js";
import { parseDuration, RuleError } from "./waypoint-routes.js";

export class PolicyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function duration(v: string, field: string): number {
  try {
    return parseDuration(v, field);
  } catch (e) {
    if (e instanceof RuleError) throw new PolicyError(field, e.message);
    throw e;
  }
}

function pct(v: number | undefined, field: string): number {
  const p = v ?? 100;
  if (!(p >= 0 && p <= 100)) throw new PolicyError(field, `percentage ${p} is not in 0..100`);
  return p;
}

export function faultPolicy(f: FaultInjection): FaultPolicy {
  const out: FaultPolicy = {};
  const s = f.spec;
  if (s.delay)
    out.delay = {
      fixedDelayMs: duration(s.delay.fixedDelay, "spec.delay.fixedDelay"),
      percent: pct(s.delay.percentage?.value, "spec.delay.percentage.value"),
    };
  if (s.abort) {
    const a = s.abort;
    let grpcStatus: number | undefined;
    if (a.grpcStatus !== undefined) {
      grpcStatus = /^[0-9]+$/.test(a.grpcStatus)
        ? Number(a.grpcStatus)
        : grpcCodes[a.grpcStatus.toUpperCase()];
      if (grpcStatus === undefined || grpcStatus > 16)
        throw new PolicyError("spec.abort.grpcStatus", `unknown gRPC status ${JSON.stringify(a.grpcStatus)}`);
    }
    if (a.httpStatus !== undefined && (a.httpStatus < 200 || a.httpStatus > 599))
      throw new PolicyError("spec.abort.httpStatus", `invalid HTTP status ${a.httpStatus}`);
    if (a.httpStatus === undefined && grpcStatus === undefined)
      throw new PolicyError("spec.abort", "needs httpStatus or grpcStatus");
    out.abort = {
      ...(a.httpStatus !== undefined ? { httpStatus: a.httpStatus } : {}),
      ...(grpcStatus !== undefined ? { grpcStatus } : {}),
      percent: pct(a.percentage?.value, "spec.abort.percentage.value"),
    };
  }
  if (!out.delay && !out.abort) throw new PolicyError("spec", "needs a delay or an abort");
  return out;
}

export function targets(p: {
  spec: { targetRef?: PolicyTargetReference; targetRefs?: PolicyTargetReference[] };
}): PolicyTargetReference[] {
  return [...(p.spec.targetRef ? [p.spec.targetRef] : []), ...(p.spec.targetRefs ?? [])];
}

export function clusterPolicy(tp: TrafficPolicy): { policy: ClusterPolicy; rateLimit?: RateLimitPolicy } {
  const s = tp.spec;
  const policy: ClusterPolicy = {};
  if (s.loadBalancer) {
    const lb = s.loadBalancer;
    if (lb.consistentHash) {
      const h = lb.consistentHash;
      if (!h.httpHeaderName && !h.httpCookie && !h.useSourceIp)
        throw new PolicyError(
          "spec.loadBalancer.consistentHash",
          "needs httpHeaderName, httpCookie or useSourceIp",
        );
      policy.loadBalancer = {
        type: "CONSISTENT_HASH",
        ...(h.httpHeaderName ? { header: h.httpHeaderName } : {}),
        ...(h.httpCookie ? { cookie: h.httpCookie.name } : {}),
        ...(h.useSourceIp ? { sourceIp: true } : {}),
      };
    } else {
      switch (lb.simple ?? "UNSPECIFIED") {
        case "UNSPECIFIED":
        case "ROUND_ROBIN":
          policy.loadBalancer = { type: "ROUND_ROBIN" };
          break;
        case "LEAST_REQUEST":
        case "LEAST_CONN":
          policy.loadBalancer = { type: "LEAST_REQUEST" };
          break;
        case "RANDOM":
          policy.loadBalancer = { type: "RANDOM" };
          break;
        default:
          throw new PolicyError("spec.loadBalancer.simple", `${lb.simple} is not supported`);
      }
    }
  }
  const cp = s.connectionPool;
  if (cp) {
    const maxConnections = cp.tcp?.maxConnections ?? cp.http?.http2MaxRequests;
    policy.connectionPool = {
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(cp.http?.http1MaxPendingRequests !== undefined
        ? { maxPendingRequests: cp.http.http1MaxPendingRequests }
        : {}),
      ...(cp.http?.maxRequestsPerConnection !== undefined
        ? { maxRequestsPerConnection: cp.http.maxRequestsPerConnection }
        : {}),
    };
  }
  const od = s.outlierDetection;
  if (od) {
    const max = od.maxEjectionPercent ?? 10;
    if (max < 0 || max > 100)
      throw new PolicyError("spec.outlierDetection.maxEjectionPercent", `must be 0..100, got ${max}`);
    policy.outlierDetection = {
      ...(od.consecutive5xxErrors !== undefined ? { consecutive5xxErrors: od.consecutive5xxErrors } : {}),
      ...(od.consecutiveGatewayErrors !== undefined
        ? { consecutiveGatewayErrors: od.consecutiveGatewayErrors }
        : {}),
      baseEjectionTimeMs: od.baseEjectionTime
        ? duration(od.baseEjectionTime, "spec.outlierDetection.baseEjectionTime")
        : 30_000,
      maxEjectionPercent: max,
    };
  }
  let rateLimit: RateLimitPolicy | undefined;
  if (s.rateLimit) {
    const b = s.rateLimit.tokenBucket;
    if (!(b.maxTokens > 0)) throw new PolicyError("spec.rateLimit.tokenBucket.maxTokens", "must be > 0");
    const fillIntervalMs = duration(b.fillInterval, "spec.rateLimit.tokenBucket.fillInterval");
    if (fillIntervalMs <= 0) throw new PolicyError("spec.rateLimit.tokenBucket.fillInterval", "must be > 0");
    rateLimit = { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill ?? b.maxTokens, fillIntervalMs };
  }
  return { policy, ...(rateLimit ? { rateLimit } : {}) };
}

export function jwtRules(ra: RequestAuthentication): JwtRule[] {
  return (ra.spec.jwtRules ?? []).map((j, i) => {
    const f = `spec.jwtRules[${i}]`;
    if (!j.issuer) throw new PolicyError(`${f}.issuer`, "required");
    if (!j.jwks && !j.jwksUri) throw new PolicyError(f, "needs jwks or jwksUri");
    if (j.jwks) {
      try {
        const parsed = JSON.parse(j.jwks) as { keys?: unknown };
        if (!Array.isArray(parsed.keys)) throw new Error("no keys array");
      } catch (e) {
        throw new PolicyError(`${f}.jwks`, `not a JWKS: ${(e as Error).message}`);
      }
    }
    if (j.jwksUri && !/^(https?|file):\/\//.test(j.jwksUri))
      throw new PolicyError(`${f}.jwksUri`, "must be an http(s):// or file:// URL");
    return {
      issuer: j.issuer,
      audiences: j.audiences ?? [],
      ...(j.jwks ? { jwks: j.jwks } : {}),
      ...(j.jwksUri ? { jwksUri: j.jwksUri } : {}),
      ...(j.fromHeaders?.length ? { fromHeaders: j.fromHeaders } : {}),
      ...(j.fromParams?.length ? { fromParams: j.fromParams } : {}),
      ...(j.forwardOriginalToken ? { forwardOriginalToken: true } : {}),
      ...(j.outputClaimToHeaders?.length ? { outputClaimToHeaders: j.outputClaimToHeaders } : {}),
    };
  });
}

function ports(v: (string | number)[] | undefined, field: string): number[] | undefined {
  if (!v?.length) return undefined;
  return v.map((p, i) => {
    const s = String(p);
    if (!/^[0-9]+$/.test(s) || Number(s) > 65535)
      throw new PolicyError(`${field}[${i}]`, `must be a port number, got ${JSON.stringify(p)}`);
    return Number(s);
  });
}

function some<T>(v: T[] | undefined): T[] | undefined {
  return v?.length ? v : undefined;
}

/** serviceAccounts ("ns/sa") become principals in the trust domain, as Istio does. */
export function l7Authz(ap: AuthorizationPolicy, trustDomain: string): L7AuthzPolicy {
  const action = ap.spec.action ?? "ALLOW";
  if (action === "CUSTOM")
    throw new PolicyError("spec.action", "CUSTOM (external authorization) is not supported");
  const sa = (list: string[] | undefined) =>
    list?.map((s) => {
      const [ns, name] = s.split("/");
      return `${trustDomain}/ns/${ns}/sa/${name}`;
    });
  return {
    name: `${ap.metadata.namespace ?? "default"}/${ap.metadata.name}`,
    action,
    // Istio: no rules → matches nothing (an ALLOW without rules denies all); `{}` matches all.
    rules: (ap.spec.rules ?? []).map((r, i) => ({
      from: (r.from ?? []).map(({ source: s }) => {
        const principals = [...(s.principals ?? []), ...(sa(s.serviceAccounts) ?? [])];
        const notPrincipals = [...(s.notPrincipals ?? []), ...(sa(s.notServiceAccounts) ?? [])];
        const ipBlocks = [...(s.ipBlocks ?? []), ...(s.remoteIpBlocks ?? [])];
        const notIpBlocks = [...(s.notIpBlocks ?? []), ...(s.notRemoteIpBlocks ?? [])];
        return {
          ...(principals.length ? { principals } : {}),
          ...(notPrincipals.length ? { notPrincipals } : {}),
          ...(some(s.requestPrincipals) ? { requestPrincipals: s.requestPrincipals } : {}),
          ...(some(s.notRequestPrincipals) ? { notRequestPrincipals: s.notRequestPrincipals } : {}),
          ...(some(s.namespaces) ? { namespaces: s.namespaces } : {}),
          ...(some(s.notNamespaces) ? { notNamespaces: s.notNamespaces } : {}),
          ...(ipBlocks.length ? { ipBlocks } : {}),
          ...(notIpBlocks.length ? { notIpBlocks } : {}),
        };
      }),
      to: (r.to ?? []).map(({ operation: o }, j) => {
        const f = `spec.rules[${i}].to[${j}].operation`;
        const p = ports(o.ports, `${f}.ports`);
        const np = ports(o.notPorts, `${f}.notPorts`);
        return {
          ...(some(o.hosts) ? { hosts: o.hosts } : {}),
          ...(some(o.notHosts) ? { notHosts: o.notHosts } : {}),
          ...(p ? { ports: p } : {}),
          ...(np ? { notPorts: np } : {}),
          ...(some(o.methods) ? { methods: o.methods } : {}),
          ...(some(o.notMethods) ? { notMethods: o.notMethods } : {}),
          ...(some(o.paths) ? { paths: o.paths } : {}),
          ...(some(o.notPaths) ? { notPaths: o.notPaths } : {}),
        };
      }),
      when: (r.when ?? []).map((w) => ({
        key: w.key,
        ...(some(w.values) ? { values: w.values } : {}),
        ...(some(w.notValues) ? { notValues: w.notValues } : {}),
      })),
    })),
  };
}

// Model → wire for ambit.v1.WaypointService (see config-codec.ts).
import { create, toBinary } from "@bufbuild/protobuf";
import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import {
  PathModifier_Type,
  type WaypointService as PbService,
  Route_Kind,
  WaypointServiceSchema,
} from "../core/gen/waypoint_pb.js";
import type {
  HeaderModifier,
  PathModifier,
  RouteFilter,
  RouteMatch,
  WaypointCluster,
  WaypointRoute,
  WaypointService,
} from "../core/model/waypoint.js";
import { actionOf, lbOf, matchOf, protoOf } from "./config-codec-common.js";

// ---------- encode ----------

function encPath(p: PathModifier | undefined) {
  return p
    ? {
        type:
          p.type === "ReplaceFullPath"
            ? PathModifier_Type.REPLACE_FULL_PATH
            : PathModifier_Type.REPLACE_PREFIX_MATCH,
        value: p.value,
      }
    : undefined;
}

function encMod(m: HeaderModifier) {
  return { set: m.set ?? [], add: m.add ?? [], remove: m.remove ?? [] };
}

function encFilter(f: RouteFilter) {
  switch (f.type) {
    case "RequestHeaderModifier":
      return { kind: { case: "requestHeaderModifier" as const, value: encMod(f.modifier) } };
    case "ResponseHeaderModifier":
      return { kind: { case: "responseHeaderModifier" as const, value: encMod(f.modifier) } };
    case "URLRewrite":
      return {
        kind: { case: "urlRewrite" as const, value: { hostname: f.hostname ?? "", path: encPath(f.path) } },
      };
    case "RequestRedirect":
      return {
        kind: {
          case: "requestRedirect" as const,
          value: {
            scheme: f.scheme ?? "",
            hostname: f.hostname ?? "",
            port: f.port,
            path: encPath(f.path),
            statusCode: f.statusCode,
          },
        },
      };
    case "RequestMirror":
      return { kind: { case: "requestMirror" as const, value: { cluster: f.cluster, percent: f.percent } } };
    case "CORS":
      return {
        kind: {
          case: "cors" as const,
          value: { ...f.cors, allowCredentials: f.cors.allowCredentials ?? false },
        },
      };
    case "Fault":
      return {
        kind: {
          case: "fault" as const,
          value: {
            delay: f.fault.delay,
            abort: f.fault.abort
              ? {
                  httpStatus: f.fault.abort.httpStatus ?? 0,
                  grpcStatus: f.fault.abort.grpcStatus,
                  percent: f.fault.abort.percent,
                }
              : undefined,
          },
        },
      };
  }
}

function encMatch(m: RouteMatch) {
  return {
    path: m.path ? { type: matchOf[m.path.type], value: m.path.value } : undefined,
    headers: (m.headers ?? []).map((h) => ({ type: matchOf[h.type], name: h.name, value: h.value })),
    queryParams: (m.queryParams ?? []).map((h) => ({ type: matchOf[h.type], name: h.name, value: h.value })),
    method: m.method ?? "",
    grpc: m.grpc
      ? { type: matchOf[m.grpc.type], service: m.grpc.service ?? "", method: m.grpc.method ?? "" }
      : undefined,
  };
}

function encRoute(r: WaypointRoute) {
  return {
    name: r.name,
    kind: r.kind === "grpc" ? Route_Kind.GRPC : Route_Kind.HTTP,
    match: encMatch(r.match),
    filters: r.filters.map(encFilter),
    backends: r.backends.map((b) => ({
      cluster: b.cluster,
      weight: b.weight,
      filters: (b.filters ?? []).map(encFilter),
    })),
    timeouts: r.timeouts,
    retry: r.retry,
  };
}

function encCluster(c: WaypointCluster) {
  const lb = c.policy?.loadBalancer;
  return {
    name: c.name,
    service: c.service,
    port: c.port,
    protocol: protoOf[c.protocol],
    endpoints: c.endpoints.map((e) => ({
      ip: e.ip,
      port: e.port,
      weight: e.weight ?? 0,
      identity: e.identity ?? "",
      workload: e.workload ?? "",
      namespace: e.namespace ?? "",
    })),
    policy: c.policy
      ? {
          loadBalancer: lb
            ? {
                type: lbOf[lb.type],
                ...(lb.type === "CONSISTENT_HASH"
                  ? {
                      hashHeader: lb.header ?? "",
                      hashCookie: lb.cookie ?? "",
                      hashSourceIp: lb.sourceIp ?? false,
                    }
                  : {}),
              }
            : undefined,
          connectionPool: c.policy.connectionPool,
          outlierDetection: c.policy.outlierDetection,
        }
      : undefined,
  };
}

export function encodeService(s: WaypointService): PbService {
  return create(WaypointServiceSchema, {
    key: s.key,
    gateway: s.gateway ?? "",
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.vips,
    ports: s.ports.map((p) => ({ port: p.port, protocol: protoOf[p.protocol], name: p.name ?? "" })),
    routes: s.routes.map(encRoute),
    clusters: s.clusters.map(encCluster),
    rateLimit: s.rateLimit,
    authz: s.authz.map((p) => ({ name: p.name, action: actionOf[p.action], rules: p.rules })),
    jwtRules: s.jwtRules.map((j) => ({
      issuer: j.issuer,
      audiences: j.audiences,
      jwks: j.jwks ?? "",
      jwksUri: j.jwksUri ?? "",
      fromHeaders: (j.fromHeaders ?? []).map((h) => ({ name: h.name, prefix: h.prefix ?? "" })),
      fromParams: j.fromParams ?? [],
      forwardOriginalToken: j.forwardOriginalToken ?? false,
      outputClaimToHeaders: j.outputClaimToHeaders ?? [],
    })),
  });
}

export function encodeServiceAny(s: WaypointService): Any {
  return anyPack(WaypointServiceSchema, encodeService(s));
}

export function encodeServiceBinary(s: WaypointService): Uint8Array {
  return toBinary(WaypointServiceSchema, encodeService(s));
}

/** Every waypoint plan's services as xDS resources (name: the service key), for the push server. */
export function encodeWaypointPlans(plans: { services: WaypointService[] }[]): Map<string, Any> {
  const out = new Map<string, Any>();
  for (const p of plans) for (const s of p.services) out.set(s.key, encodeServiceAny(s));
  return out;
}

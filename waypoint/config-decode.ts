// Wire → model for ambit.v1.WaypointService, validated: every error names the field (→ NACK).
import { fromBinary } from "@bufbuild/protobuf";
import { type Any, anyUnpack } from "@bufbuild/protobuf/wkt";
import {
  MatchType,
  PathModifier_Type,
  type Filter as PbFilter,
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
import {
  actionName,
  ConfigCodecError,
  lbName,
  matchName,
  protocolOf,
  WAYPOINT_SERVICE_TYPE_URL,
} from "./config-codec-common.js";
import { compileRoutes, RouteCompileError } from "./routes/match.js";

// ---------- decode ----------

class Ctx {
  constructor(readonly resource: string) {}
  fail(field: string, reason: string): never {
    throw new ConfigCodecError(this.resource, field, reason);
  }
}

function decPath(
  c: Ctx,
  field: string,
  p: { type: PathModifier_Type; value: string } | undefined,
): PathModifier | undefined {
  if (!p) return undefined;
  if (p.type === PathModifier_Type.REPLACE_FULL_PATH) {
    if (!p.value.startsWith("/")) c.fail(`${field}.value`, "must start with /");
    return { type: "ReplaceFullPath", value: p.value };
  }
  if (p.type === PathModifier_Type.REPLACE_PREFIX_MATCH)
    return { type: "ReplacePrefixMatch", value: p.value || "/" };
  return c.fail(`${field}.type`, `unknown path modifier ${p.type}`);
}

function decMod(m: {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}): HeaderModifier {
  const out: HeaderModifier = {};
  if (m.set.length) out.set = m.set.map((h) => ({ name: h.name, value: h.value }));
  if (m.add.length) out.add = m.add.map((h) => ({ name: h.name, value: h.value }));
  if (m.remove.length) out.remove = [...m.remove];
  return out;
}

function percent(c: Ctx, field: string, v: number): number {
  if (!(v >= 0 && v <= 100)) c.fail(field, `percent ${v} is not in 0..100`);
  return v;
}

function decFilter(c: Ctx, field: string, f: PbFilter): RouteFilter {
  const k = f.kind;
  switch (k.case) {
    case "requestHeaderModifier":
      return { type: "RequestHeaderModifier", modifier: decMod(k.value) };
    case "responseHeaderModifier":
      return { type: "ResponseHeaderModifier", modifier: decMod(k.value) };
    case "urlRewrite": {
      const path = decPath(c, `${field}.urlRewrite.path`, k.value.path);
      return {
        type: "URLRewrite",
        ...(k.value.hostname ? { hostname: k.value.hostname } : {}),
        ...(path ? { path } : {}),
      };
    }
    case "requestRedirect": {
      const v = k.value;
      const code = v.statusCode || 302;
      if (![301, 302, 303, 307, 308].includes(code))
        c.fail(`${field}.requestRedirect.statusCode`, `unsupported redirect status ${code}`);
      if (v.scheme && v.scheme !== "http" && v.scheme !== "https")
        c.fail(`${field}.requestRedirect.scheme`, `unsupported scheme ${v.scheme}`);
      const path = decPath(c, `${field}.requestRedirect.path`, v.path);
      return {
        type: "RequestRedirect",
        statusCode: code,
        ...(v.scheme ? { scheme: v.scheme } : {}),
        ...(v.hostname ? { hostname: v.hostname } : {}),
        ...(v.port !== undefined ? { port: v.port } : {}),
        ...(path ? { path } : {}),
      };
    }
    case "requestMirror":
      if (!k.value.cluster) c.fail(`${field}.requestMirror.cluster`, "required");
      return {
        type: "RequestMirror",
        cluster: k.value.cluster,
        percent: percent(c, `${field}.requestMirror.percent`, k.value.percent),
      };
    case "cors":
      return {
        type: "CORS",
        cors: {
          allowOrigins: [...k.value.allowOrigins],
          allowMethods: [...k.value.allowMethods],
          allowHeaders: [...k.value.allowHeaders],
          exposeHeaders: [...k.value.exposeHeaders],
          ...(k.value.maxAgeSeconds !== undefined ? { maxAgeSeconds: k.value.maxAgeSeconds } : {}),
          ...(k.value.allowCredentials ? { allowCredentials: true } : {}),
        },
      };
    case "fault": {
      const { delay, abort } = k.value;
      if (!delay && !abort) c.fail(`${field}.fault`, "needs a delay or an abort");
      if (abort && !abort.httpStatus && abort.grpcStatus === undefined)
        c.fail(`${field}.fault.abort`, "needs httpStatus or grpcStatus");
      if (abort?.httpStatus && (abort.httpStatus < 200 || abort.httpStatus > 599))
        c.fail(`${field}.fault.abort.httpStatus`, `invalid status ${abort.httpStatus}`);
      if (abort?.grpcStatus !== undefined && abort.grpcStatus > 16)
        c.fail(`${field}.fault.abort.grpcStatus`, `invalid gRPC code ${abort.grpcStatus}`);
      return {
        type: "Fault",
        fault: {
          ...(delay
            ? {
                delay: {
                  fixedDelayMs: delay.fixedDelayMs,
                  percent: percent(c, `${field}.fault.delay.percent`, delay.percent),
                },
              }
            : {}),
          ...(abort
            ? {
                abort: {
                  ...(abort.httpStatus ? { httpStatus: abort.httpStatus } : {}),
                  ...(abort.grpcStatus !== undefined ? { grpcStatus: abort.grpcStatus } : {}),
                  percent: percent(c, `${field}.fault.abort.percent`, abort.percent),
                },
              }
            : {}),
        },
      };
    }
    default:
      return c.fail(field, "unknown or empty filter");
  }
}

function decMatch(c: Ctx, field: string, m: PbService["routes"][number]["match"]): RouteMatch {
  const out: RouteMatch = {};
  if (!m) return out;
  if (m.path) {
    const type = matchName[m.path.type];
    if (!type) c.fail(`${field}.path.type`, `unknown match type ${m.path.type}`);
    if (type !== "RegularExpression" && !m.path.value.startsWith("/"))
      c.fail(`${field}.path.value`, "must start with /");
    out.path = { type, value: m.path.value };
  }
  const vm = (list: typeof m.headers, name: string) =>
    list.map((h, i) => {
      if (h.type === MatchType.PATH_PREFIX)
        c.fail(`${field}.${name}[${i}].type`, "PathPrefix is only for paths");
      if (!h.name) c.fail(`${field}.${name}[${i}].name`, "required");
      return {
        type: h.type === MatchType.REGULAR_EXPRESSION ? ("RegularExpression" as const) : ("Exact" as const),
        name: h.name,
        value: h.value,
      };
    });
  if (m.headers.length) out.headers = vm(m.headers, "headers");
  if (m.queryParams.length) out.queryParams = vm(m.queryParams, "queryParams");
  if (m.method) out.method = m.method;
  if (m.grpc) {
    out.grpc = {
      type: m.grpc.type === MatchType.REGULAR_EXPRESSION ? "RegularExpression" : "Exact",
      ...(m.grpc.service ? { service: m.grpc.service } : {}),
      ...(m.grpc.method ? { method: m.grpc.method } : {}),
    };
  }
  return out;
}

function decCluster(c: Ctx, field: string, pc: PbService["clusters"][number]): WaypointCluster {
  if (!pc.name) c.fail(`${field}.name`, "required");
  const protocol = protocolOf[pc.protocol];
  if (!protocol) c.fail(`${field}.protocol`, "unspecified");
  const endpoints = pc.endpoints.map((e, i) => {
    if (!e.ip) c.fail(`${field}.endpoints[${i}].ip`, "required");
    if (!(e.port > 0 && e.port < 65536)) c.fail(`${field}.endpoints[${i}].port`, `invalid port ${e.port}`);
    return {
      ip: e.ip,
      port: e.port,
      ...(e.weight ? { weight: e.weight } : {}),
      ...(e.identity ? { identity: e.identity } : {}),
      ...(e.workload ? { workload: e.workload } : {}),
      ...(e.namespace ? { namespace: e.namespace } : {}),
    };
  });
  const out: WaypointCluster = { name: pc.name, service: pc.service, port: pc.port, protocol, endpoints };
  const p = pc.policy;
  if (p) {
    out.policy = {};
    if (p.loadBalancer) {
      const type = lbName[p.loadBalancer.type];
      if (!type) c.fail(`${field}.policy.loadBalancer.type`, `unknown ${p.loadBalancer.type}`);
      out.policy.loadBalancer =
        type === "CONSISTENT_HASH"
          ? {
              type,
              ...(p.loadBalancer.hashHeader ? { header: p.loadBalancer.hashHeader } : {}),
              ...(p.loadBalancer.hashCookie ? { cookie: p.loadBalancer.hashCookie } : {}),
              ...(p.loadBalancer.hashSourceIp ? { sourceIp: true } : {}),
            }
          : { type };
    }
    if (p.connectionPool) {
      const cp = p.connectionPool;
      out.policy.connectionPool = {
        ...(cp.maxConnections !== undefined ? { maxConnections: cp.maxConnections } : {}),
        ...(cp.maxPendingRequests !== undefined ? { maxPendingRequests: cp.maxPendingRequests } : {}),
        ...(cp.maxRequestsPerConnection !== undefined
          ? { maxRequestsPerConnection: cp.maxRequestsPerConnection }
          : {}),
      };
    }
    if (p.outlierDetection) {
      const o = p.outlierDetection;
      if (o.maxEjectionPercent > 100)
        c.fail(`${field}.policy.outlierDetection.maxEjectionPercent`, "must be 0..100");
      out.policy.outlierDetection = {
        ...(o.consecutive5xxErrors !== undefined ? { consecutive5xxErrors: o.consecutive5xxErrors } : {}),
        ...(o.consecutiveGatewayErrors !== undefined
          ? { consecutiveGatewayErrors: o.consecutiveGatewayErrors }
          : {}),
        baseEjectionTimeMs: o.baseEjectionTimeMs || 30_000,
        maxEjectionPercent: o.maxEjectionPercent,
      };
    }
  }
  return out;
}

function nonEmpty<T>(a: T[]): T[] | undefined {
  return a.length ? [...a] : undefined;
}

/** Proto → model, validated. Throws ConfigCodecError naming the field. */
export function decodeService(pb: PbService): WaypointService {
  const c = new Ctx(pb.key);
  if (!pb.key) c.fail("key", "required");
  if (!pb.hostname) c.fail("hostname", "required");
  const ports = pb.ports.map((p, i) => {
    if (!(p.port > 0 && p.port < 65536)) c.fail(`ports[${i}].port`, `invalid port ${p.port}`);
    const protocol = protocolOf[p.protocol];
    if (!protocol) c.fail(`ports[${i}].protocol`, "unspecified");
    return { port: p.port, protocol, ...(p.name ? { name: p.name } : {}) };
  });
  const routes: WaypointRoute[] = pb.routes.map((r, i) => {
    const f = `routes[${i}]`;
    if (!r.name) c.fail(`${f}.name`, "required");
    const route: WaypointRoute = {
      name: r.name,
      kind: r.kind === Route_Kind.GRPC ? "grpc" : "http",
      match: decMatch(c, `${f}.match`, r.match),
      filters: r.filters.map((x, j) => decFilter(c, `${f}.filters[${j}]`, x)),
      backends: r.backends.map((b, j) => {
        if (!b.cluster) c.fail(`${f}.backends[${j}].cluster`, "required");
        const filters = b.filters.map((x, k) => decFilter(c, `${f}.backends[${j}].filters[${k}]`, x));
        return { cluster: b.cluster, weight: b.weight, ...(filters.length ? { filters } : {}) };
      }),
    };
    if (r.timeouts && (r.timeouts.requestMs !== undefined || r.timeouts.backendRequestMs !== undefined))
      route.timeouts = {
        ...(r.timeouts.requestMs ? { requestMs: r.timeouts.requestMs } : {}),
        ...(r.timeouts.backendRequestMs ? { backendRequestMs: r.timeouts.backendRequestMs } : {}),
      };
    if (r.retry) {
      for (const [j, code] of r.retry.codes.entries())
        if (code < 400 || code > 599) c.fail(`${f}.retry.codes[${j}]`, `not an error status: ${code}`);
      route.retry = {
        attempts: r.retry.attempts,
        codes: [...r.retry.codes],
        grpcCodes: [...r.retry.grpcCodes],
        backoffMs: r.retry.backoffMs,
      };
    }
    return route;
  });
  try {
    compileRoutes(routes);
  } catch (e) {
    if (e instanceof RouteCompileError) c.fail(e.field, e.message.slice(e.field.length + 2));
    throw e;
  }
  const svc: WaypointService = {
    key: pb.key,
    ...(pb.gateway ? { gateway: pb.gateway } : {}),
    name: pb.name,
    namespace: pb.namespace,
    hostname: pb.hostname,
    vips: [...pb.vips],
    ports,
    routes,
    clusters: pb.clusters.map((x, i) => decCluster(c, `clusters[${i}]`, x)),
    authz: pb.authz.map((p, i) => {
      const action = actionName[p.action];
      if (!action) c.fail(`authz[${i}].action`, `unknown action ${p.action}`);
      return {
        name: p.name,
        action,
        rules: p.rules.map((r) => ({
          from: r.from.map((s) => ({
            ...(nonEmpty(s.principals) ? { principals: [...s.principals] } : {}),
            ...(nonEmpty(s.notPrincipals) ? { notPrincipals: [...s.notPrincipals] } : {}),
            ...(nonEmpty(s.requestPrincipals) ? { requestPrincipals: [...s.requestPrincipals] } : {}),
            ...(nonEmpty(s.notRequestPrincipals)
              ? { notRequestPrincipals: [...s.notRequestPrincipals] }
              : {}),
            ...(nonEmpty(s.namespaces) ? { namespaces: [...s.namespaces] } : {}),
            ...(nonEmpty(s.notNamespaces) ? { notNamespaces: [...s.notNamespaces] } : {}),
            ...(nonEmpty(s.ipBlocks) ? { ipBlocks: [...s.ipBlocks] } : {}),
            ...(nonEmpty(s.notIpBlocks) ? { notIpBlocks: [...s.notIpBlocks] } : {}),
          })),
          to: r.to.map((o) => ({
            ...(nonEmpty(o.hosts) ? { hosts: [...o.hosts] } : {}),
            ...(nonEmpty(o.notHosts) ? { notHosts: [...o.notHosts] } : {}),
            ...(nonEmpty(o.ports) ? { ports: [...o.ports] } : {}),
            ...(nonEmpty(o.notPorts) ? { notPorts: [...o.notPorts] } : {}),
            ...(nonEmpty(o.methods) ? { methods: [...o.methods] } : {}),
            ...(nonEmpty(o.notMethods) ? { notMethods: [...o.notMethods] } : {}),
            ...(nonEmpty(o.paths) ? { paths: [...o.paths] } : {}),
            ...(nonEmpty(o.notPaths) ? { notPaths: [...o.notPaths] } : {}),
          })),
          when: r.when.map((w) => ({
            key: w.key,
            ...(nonEmpty(w.values) ? { values: [...w.values] } : {}),
            ...(nonEmpty(w.notValues) ? { notValues: [...w.notValues] } : {}),
          })),
        })),
      };
    }),
    jwtRules: pb.jwtRules.map((j, i) => {
      if (!j.issuer) c.fail(`jwtRules[${i}].issuer`, "required");
      if (!j.jwks && !j.jwksUri) c.fail(`jwtRules[${i}]`, "needs jwks or jwksUri");
      if (j.jwks) {
        try {
          const parsed = JSON.parse(j.jwks) as { keys?: unknown };
          if (!Array.isArray(parsed.keys)) c.fail(`jwtRules[${i}].jwks`, "not a JWKS (no keys array)");
        } catch (e) {
          if (e instanceof ConfigCodecError) throw e;
          c.fail(`jwtRules[${i}].jwks`, `invalid JSON: ${(e as Error).message}`);
        }
      }
      if (j.jwksUri && !/^(https?|file):\/\//.test(j.jwksUri))
        c.fail(`jwtRules[${i}].jwksUri`, "must be http(s):// or file://");
      return {
        issuer: j.issuer,
        audiences: [...j.audiences],
        ...(j.jwks ? { jwks: j.jwks } : {}),
        ...(j.jwksUri ? { jwksUri: j.jwksUri } : {}),
        ...(j.fromHeaders.length
          ? {
              fromHeaders: j.fromHeaders.map((h) => ({
                name: h.name,
                ...(h.prefix ? { prefix: h.prefix } : {}),
              })),
            }
          : {}),
        ...(j.fromParams.length ? { fromParams: [...j.fromParams] } : {}),
        ...(j.forwardOriginalToken ? { forwardOriginalToken: true } : {}),
        ...(j.outputClaimToHeaders.length
          ? {
              outputClaimToHeaders: j.outputClaimToHeaders.map((o) => ({ header: o.header, claim: o.claim })),
            }
          : {}),
      };
    }),
  };
  if (pb.rateLimit) {
    const r = pb.rateLimit;
    if (!r.maxTokens) c.fail("rateLimit.maxTokens", "must be > 0");
    if (!r.fillIntervalMs) c.fail("rateLimit.fillIntervalMs", "must be > 0");
    svc.rateLimit = {
      maxTokens: r.maxTokens,
      tokensPerFill: r.tokensPerFill || r.maxTokens,
      fillIntervalMs: r.fillIntervalMs,
    };
  }
  return svc;
}

/** An xDS resource (Any) → model. Throws ConfigCodecError (→ NACK). */
export function decodeServiceAny(any: Any, resourceName = ""): WaypointService {
  if (any.typeUrl !== WAYPOINT_SERVICE_TYPE_URL)
    throw new ConfigCodecError(resourceName, "typeUrl", `unexpected ${any.typeUrl}`);
  let pb: PbService | undefined;
  try {
    pb = anyUnpack(any, WaypointServiceSchema);
  } catch (e) {
    throw new ConfigCodecError(resourceName, "value", `cannot decode: ${(e as Error).message}`);
  }
  if (!pb) throw new ConfigCodecError(resourceName, "typeUrl", "not a WaypointService");
  const svc = decodeService(pb);
  if (resourceName && svc.key !== resourceName)
    throw new ConfigCodecError(resourceName, "key", `does not match the resource name (${svc.key})`);
  return svc;
}

export function decodeServiceBinary(b: Uint8Array): WaypointService {
  return decodeService(fromBinary(WaypointServiceSchema, b));
}

// The per-request pipeline: service lookup → rate limit → JWT → L7 authz →
// route → filters → backend pick → mirror → forward. Each step may answer
// the request itself. Telemetry is recorded once, when the response closes.
import { performance } from "node:perf_hooks";
import { parsePeerBaggage } from "../core/hbone/baggage.js";
import type { HboneStreamInfo } from "../core/hbone/server.js";
import type { RouteFilter, WaypointRoute } from "../core/model/waypoint.js";
import { clusterName } from "../core/model/waypoint.js";
import { ReplayableBody } from "./body.js";
import {
  type DownstreamRequest,
  type DownstreamResponse,
  type Exchange,
  localReply,
  parseGrpcTimeout,
  upstreamHeaders,
} from "./exchange.js";
import { corsPreflight, corsResponseHeaders, isPreflight, originAllowed } from "./filters/cors.js";
import { decideFault } from "./filters/fault.js";
import { applyHeaderModifier } from "./filters/request-header-modifier.js";
import { sendMirror } from "./filters/request-mirror.js";
import { redirectLocation } from "./filters/request-redirect.js";
import { rewriteUrl } from "./filters/url-rewrite.js";
import { forward } from "./forward.js";
import type { EndpointState } from "./lb/endpoint.js";
import type { AuthResult } from "./policy/jwt.js";
import { deniedTotal } from "./policy/l7-authz.js";
import { ratelimitedTotal } from "./policy/rate-limit.js";
import { matchRoute, type RouteHit } from "./routes/match.js";
import type { CompiledService, WaypointState } from "./state.js";
import {
  type AccessLog,
  type DestinationLabels,
  namespaceOfIdentity,
  recordRequest,
  type SourceLabels,
  traceFrom,
  traceparent,
  UNKNOWN_DESTINATION,
} from "./telemetry.js";
import type { RequestTracer } from "./tracing.js";

/** What the listener knows about the connection a request came on. */
export interface ConnMeta {
  peerIdentity?: string;
  dst: { ip: string; port: number };
  sourceIp?: string;
  sourceWorkload?: string;
  sourceNamespace?: string;
  /**
   * The HBONE CONNECT's `baggage` (peer metadata from the caller's ztunnel).
   * Unauthenticated: names the source in metric labels when its address is
   * unknown here, never used for authorization (as in Istio).
   */
  peerBaggage?: string;
}

/** The connection metadata of an accepted HBONE CONNECT stream (the waypoint's production path). */
export function connMetaOf(info: HboneStreamInfo): ConnMeta {
  return {
    ...(info.peerIdentity ? { peerIdentity: info.peerIdentity } : {}),
    dst: info.authority,
    sourceIp: info.peerAddress,
    ...(info.baggage ? { peerBaggage: info.baggage } : {}),
  };
}

type Mirror = Extract<RouteFilter, { type: "RequestMirror" }>;

function pickWeighted(route: WaypointRoute) {
  const b = route.backends;
  if (b.length <= 1) return b[0];
  let total = 0;
  for (const x of b) total += x.weight;
  if (total <= 0) return undefined;
  let r = Math.random() * total;
  for (const x of b) {
    r -= x.weight;
    if (r < 0) return x;
  }
  return b[b.length - 1];
}

function hashKeyFor(
  svcLb: { header?: string; cookie?: string; sourceIp?: boolean },
  ex: Exchange,
  conn: ConnMeta,
): string | undefined {
  if (svcLb.header) {
    const v = ex.headers[svcLb.header.toLowerCase()];
    return v === undefined ? undefined : String(v);
  }
  if (svcLb.cookie) {
    const c = ex.headers.cookie;
    const m = typeof c === "string" ? new RegExp(`(?:^|;\\s*)${svcLb.cookie}=([^;]*)`).exec(c) : null;
    return m?.[1];
  }
  if (svcLb.sourceIp) return conn.sourceIp;
  return undefined;
}

export interface ProxyOptions {
  accessLog: AccessLog;
  /** Request spans over OTLP; absent: no tracing cost beyond the traceparent header. */
  tracer?: RequestTracer;
}

export class HttpProxy {
  constructor(
    private readonly state: WaypointState,
    private readonly opts: ProxyOptions,
  ) {}

  // Metric labels, resolved once per connection and once per endpoint (or
  // service), so recording a request builds no strings.
  private readonly sources = new WeakMap<ConnMeta, SourceLabels>();
  private readonly destinations = new WeakMap<object, DestinationLabels>();

  // Callers by (identity, address, baggage, own labels): a new connection of
  // a known caller (one per request with Connection: close) reuses its
  // labels object, and with it its metric tallies. Cleared on a config change.
  private readonly callers = new Map<string, SourceLabels>();
  private callersGeneration = -1;

  /** The caller's labels: the connection's own, else its address among the mesh endpoints, else its CONNECT baggage, else its identity. */
  sourceLabels(conn: ConnMeta): SourceLabels {
    let s = this.sources.get(conn);
    if (s) return s;
    if (this.callersGeneration !== this.state.generation || this.callers.size >= 4096) {
      this.callers.clear();
      this.callersGeneration = this.state.generation;
    }
    const key = `${conn.peerIdentity}\u0000${conn.sourceIp}\u0000${conn.peerBaggage}\u0000${conn.sourceWorkload}\u0000${conn.sourceNamespace}`;
    s = this.callers.get(key);
    if (!s) {
      const known =
        (conn.sourceIp ? this.state.workloadAt(conn.sourceIp) : undefined) ??
        (conn.peerBaggage ? parsePeerBaggage(conn.peerBaggage) : undefined);
      const workload = conn.sourceWorkload ?? known?.workload;
      const namespace = conn.sourceNamespace ?? known?.namespace ?? namespaceOfIdentity(conn.peerIdentity);
      s = {
        ...(conn.peerIdentity ? { principal: conn.peerIdentity } : {}),
        ...(workload ? { workload } : {}),
        ...(namespace ? { namespace } : {}),
      };
      this.callers.set(key, s);
    }
    this.sources.set(conn, s);
    return s;
  }

  /** The destination's labels: the endpoint's workload when one was picked, else the service alone. */
  destinationLabels(svc: CompiledService | undefined, ep: EndpointState | undefined): DestinationLabels {
    if (!svc) return UNKNOWN_DESTINATION;
    const owner: object = ep ?? svc;
    let d = this.destinations.get(owner);
    if (!d) {
      d = {
        service: svc.svc.hostname,
        ...(ep?.workload ? { workload: ep.workload } : {}),
        ...(ep?.namespace ? { namespace: ep.namespace } : {}),
        ...(ep?.identity ? { principal: ep.identity } : {}),
      };
      this.destinations.set(owner, d);
    }
    return d;
  }

  /** Service for a request: by destination VIP:port, else by Host. */
  resolve(conn: ConnMeta, authority: string | undefined): CompiledService | undefined {
    return this.state.byDestination(conn.dst.ip, conn.dst.port) ?? this.state.byAuthority(authority);
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, conn: ConnMeta): void {
    const t0 = performance.now();
    const h2 = "stream" in req;
    const raw = req.headers as Record<string, string | string[] | undefined>;
    const authority = String((h2 ? raw[":authority"] : raw.host) ?? raw.host ?? "");
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const ct = raw["content-type"];
    const grpc = typeof ct === "string" && ct.startsWith("application/grpc");
    const trace = traceFrom(raw.traceparent);
    const grpcTimeoutMs = grpc ? parseGrpcTimeout(raw["grpc-timeout"]) : undefined;
    const svc = this.resolve(conn, authority);
    const span = this.opts.tracer?.begin(trace, method, authority);
    const ex: Exchange = {
      req,
      res,
      method,
      url,
      authority,
      headers: raw as Exchange["headers"],
      grpc,
      h2,
      trace,
      attempts: 0,
      code: 0,
      requestBytes: 0,
      responseBytes: 0,
      ...(grpcTimeoutMs !== undefined ? { grpcTimeoutMs } : {}),
    };
    res.once("close", () => {
      const durationMs = performance.now() - t0;
      const code = ex.code || (res.headersSent ? res.statusCode : 0);
      recordRequest(this.sourceLabels(conn), this.destinationLabels(svc, ex.endpoint), {
        code,
        grpc,
        durationMs,
        requestBytes: ex.requestBytes,
        responseBytes: ex.responseBytes,
      });
      this.opts.accessLog.maybe({
        method,
        path: url,
        code,
        durationMs,
        attempts: ex.attempts,
        trace,
        ...(ex.route ? { route: ex.route } : {}),
        ...(ex.upstream ? { upstream: ex.upstream } : {}),
        ...(ex.flags ? { flags: ex.flags } : {}),
      });
      if (span)
        this.opts.tracer!.end(span, {
          method,
          code,
          path: url.split("?", 1)[0]!,
          attempts: ex.attempts,
          requestBytes: ex.requestBytes,
          responseBytes: ex.responseBytes,
          ...(svc ? { service: svc.svc.hostname } : {}),
          ...(ex.route ? { route: ex.route } : {}),
          ...(ex.upstream ? { upstream: ex.upstream } : {}),
          ...(ex.fault ? { fault: ex.fault } : {}),
          ...(ex.flags ? { flags: ex.flags } : {}),
          ...(conn.peerIdentity ? { sourcePrincipal: conn.peerIdentity } : {}),
        });
    });
    this.run(ex, svc, conn).catch((e: Error) => {
      if (!res.headersSent) localReply(ex, 500, `internal error: ${e.message}`);
      else res.destroy();
    });
  }

  private async run(ex: Exchange, svc: CompiledService | undefined, conn: ConnMeta): Promise<void> {
    if (!svc) {
      ex.flags = "NR";
      localReply(ex, 404, `no service for ${conn.dst.ip}:${conn.dst.port}`, {}, 12);
      return;
    }
    upstreamHeaders(ex.headers as Record<string, string | string[] | undefined>);
    ex.headers.traceparent = traceparent(ex.trace);

    if (svc.bucket && !svc.bucket.take()) {
      ratelimitedTotal.inc({ destination_service: svc.svc.hostname });
      ex.flags = "RL";
      localReply(ex, 429, "local rate limited", svc.bucket.deniedHeaders(), 14);
      return;
    }

    let auth: AuthResult | undefined;
    if (!svc.jwt.empty) {
      const r = await svc.jwt.authenticate(
        ex.headers as Record<string, string | string[] | undefined>,
        ex.url,
      );
      if (r.kind === "invalid") {
        deniedTotal.inc({ reason: "jwt_invalid" });
        ex.flags = "UAEX";
        localReply(ex, 401, "Jwt verification fails", { "www-authenticate": 'Bearer realm="ambit"' }, 16);
        return;
      }
      if (r.kind === "ok") auth = r.auth;
    }
    if (!svc.authz.empty) {
      const d = svc.authz.evaluate({
        method: ex.method,
        path: ex.url.split("?", 1)[0]!,
        host: ex.authority,
        port: conn.dst.port,
        headers: ex.headers as Record<string, string | string[] | undefined>,
        ...(conn.peerIdentity ? { sourcePrincipal: conn.peerIdentity } : {}),
        ...(conn.sourceIp ? { sourceIp: conn.sourceIp } : {}),
        ...(auth ? { auth } : {}),
      });
      if (!d.allow) {
        ex.flags = "RBAC";
        if (d.needsAuthentication) {
          deniedTotal.inc({ reason: "jwt_missing" });
          localReply(ex, 401, "Jwt is missing", { "www-authenticate": 'Bearer realm="ambit"' }, 16);
        } else {
          deniedTotal.inc({ reason: "policy" });
          localReply(ex, 403, "RBAC: access denied", {}, 7);
        }
        return;
      }
    }

    let route: WaypointRoute;
    let hit: RouteHit | undefined;
    if (svc.routes.empty) {
      route = defaultRoute(svc, conn.dst.port);
    } else {
      hit = matchRoute(svc.routes, {
        method: ex.method,
        url: ex.url,
        headers: ex.headers as RouteRequestHeaders,
        grpc: ex.grpc,
      });
      if (!hit) {
        ex.flags = "NR";
        localReply(ex, 404, "route not found", {}, 12);
        return;
      }
      route = hit.route;
    }
    ex.route = route.name;
    const mirrors: Mirror[] = [];
    // No filters (the common case): no async call, so no extra microtask per request.
    if (route.filters.length && !(await this.applyFilters(ex, route.filters, hit, mirrors))) return;
    const backend = pickWeighted(route);
    if (!backend) {
      localReply(ex, 500, "route has no backends");
      return;
    }
    if (backend.filters?.length && !(await this.applyFilters(ex, backend.filters, hit, mirrors))) return;
    const lb = svc.svc.clusters.find((c) => c.name === backend.cluster)?.policy?.loadBalancer;
    if (lb?.type === "CONSISTENT_HASH") {
      const k = hashKeyFor(lb, ex, conn);
      if (k !== undefined) ex.hashKey = k;
    }
    const body = route.retry || mirrors.length ? new ReplayableBody(ex.req) : undefined;
    for (const m of mirrors) sendMirror(this.state, m, ex, body);
    await forward(this.state, ex, route, backend.cluster, body);
    if (body) ex.requestBytes = body.bytes;
  }

  /** Applies filters in order; false when one of them answered the request. */
  private async applyFilters(
    ex: Exchange,
    filters: RouteFilter[],
    hit: RouteHit | undefined,
    mirrors: Mirror[],
  ): Promise<boolean> {
    for (const f of filters) {
      switch (f.type) {
        case "RequestHeaderModifier":
          applyHeaderModifier(ex.headers, f.modifier);
          break;
        case "ResponseHeaderModifier":
          if (ex.responseMods) ex.responseMods.push(f.modifier);
          else ex.responseMods = [f.modifier];
          break;
        case "URLRewrite":
          if (f.hostname) ex.authority = f.hostname;
          if (f.path) ex.url = rewriteUrl(ex.url, f.path, hit?.prefix);
          break;
        case "RequestRedirect": {
          const location = redirectLocation(
            f,
            { scheme: "http", authority: ex.authority, url: ex.url },
            hit?.prefix,
          );
          localReply(ex, f.statusCode, "", { location });
          return false;
        }
        case "RequestMirror":
          mirrors.push(f);
          break;
        case "CORS": {
          const origin = ex.headers.origin;
          if (typeof origin !== "string") break;
          if (isPreflight(ex.method, ex.headers)) {
            const h = corsPreflight(f.cors, ex.headers);
            if (h) {
              ex.extraResponseHeaders = h;
              ex.code = 204;
              ex.res.writeHead(204, h);
              ex.res.end();
              return false;
            }
          } else if (originAllowed(f.cors, origin))
            ex.extraResponseHeaders = corsResponseHeaders(f.cors, origin);
          break;
        }
        case "Fault": {
          const d = decideFault(f.fault);
          if (d.delayMs > 0) {
            ex.fault = "delay";
            await new Promise((r) => setTimeout(r, d.delayMs));
            if (ex.res.destroyed) return false;
          }
          if (d.abort) {
            ex.flags = "FI";
            ex.fault = ex.fault ? `${ex.fault},abort` : "abort";
            const status = d.abort.httpStatus ?? 503;
            localReply(
              ex,
              ex.grpc && d.abort.grpcStatus !== undefined ? 200 : status,
              "fault filter abort",
              {},
              d.abort.grpcStatus,
            );
            return false;
          }
          break;
        }
      }
    }
    return true;
  }
}

type RouteRequestHeaders = Record<string, string | string[] | undefined>;

const defaults = new WeakMap<CompiledService, Map<number, WaypointRoute>>();
/** With no routes, a service's traffic goes to the service itself on the same port. */
function defaultRoute(svc: CompiledService, port: number): WaypointRoute {
  let m = defaults.get(svc);
  if (!m) {
    m = new Map();
    defaults.set(svc, m);
  }
  let r = m.get(port);
  if (!r) {
    r = {
      name: `default/${svc.svc.key}:${port}`,
      kind: "http",
      match: {},
      filters: [],
      backends: [{ cluster: clusterName(svc.svc.key, port), weight: 1 }],
    };
    m.set(port, r);
  }
  return r;
}

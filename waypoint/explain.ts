// What the waypoint would do with a request, without sending it: the same
// compiled service, rate limit aside, the same authorization and route
// matching as the data path. `ambit why` calls this so that its answer is
// the data plane's answer.
import type { RouteFilter, WaypointService } from "../core/model/waypoint.js";
import { clusterName } from "../core/model/waypoint.js";
import type { AuthResult } from "./policy/jwt.js";
import { matchRoute } from "./routes/match.js";
import { compileService } from "./state.js";

export interface ExplainRequest {
  method: string;
  /** Path with query. */
  url: string;
  port: number;
  headers?: Record<string, string>;
  grpc?: boolean;
  sourcePrincipal?: string;
  sourceIp?: string;
  /** A validated JWT, if the request would carry one. */
  auth?: AuthResult;
}

export type ExplainResult =
  | { outcome: "denied"; status: 401 | 403; policy?: string; reason: string }
  | { outcome: "no-route"; status: 404; grpcStatus?: 12 }
  | { outcome: "redirect"; route: string; status: number }
  | {
      outcome: "fault";
      route: string;
      abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
      delay?: { fixedDelayMs: number; percent: number };
    }
  | {
      outcome: "routed";
      route: string;
      /** Candidate backends with their share of traffic (percent). */
      backends: { cluster: string; percent: number; endpoints: number }[];
      filters: RouteFilter["type"][];
      policy?: string;
    };

export function explainRequest(svc: WaypointService, req: ExplainRequest): ExplainResult {
  const c = compileService(svc);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  const path = req.url.split("?", 1)[0]!;
  let policy: string | undefined;
  if (!c.authz.empty) {
    const d = c.authz.evaluate({
      method: req.method,
      path,
      host: headers.host ?? svc.hostname,
      port: req.port,
      headers,
      ...(req.sourcePrincipal ? { sourcePrincipal: req.sourcePrincipal } : {}),
      ...(req.sourceIp ? { sourceIp: req.sourceIp } : {}),
      ...(req.auth ? { auth: req.auth } : {}),
    });
    if (!d.allow)
      return d.needsAuthentication
        ? {
            outcome: "denied",
            status: 401,
            reason: "a JWT is required by an ALLOW policy and none was given",
          }
        : {
            outcome: "denied",
            status: 403,
            ...(d.policy ? { policy: d.policy } : {}),
            reason: d.policy ? `DENY policy ${d.policy} matches` : "no ALLOW policy matches",
          };
    policy = d.policy;
  }
  const route = c.routes.empty
    ? {
        name: `default/${svc.key}:${req.port}`,
        filters: [] as RouteFilter[],
        backends: [{ cluster: clusterName(svc.key, req.port), weight: 1 }],
      }
    : matchRoute(c.routes, { method: req.method, url: req.url, headers, grpc: req.grpc ?? false })?.route;
  if (!route) return { outcome: "no-route", status: 404, ...(req.grpc ? { grpcStatus: 12 as const } : {}) };
  for (const f of route.filters) {
    if (f.type === "RequestRedirect") return { outcome: "redirect", route: route.name, status: f.statusCode };
    if (f.type === "Fault") return { outcome: "fault", route: route.name, ...f.fault };
  }
  const total = route.backends.reduce((n, b) => n + b.weight, 0);
  return {
    outcome: "routed",
    route: route.name,
    backends: route.backends.map((b) => ({
      cluster: b.cluster,
      percent: total > 0 ? (b.weight * 100) / total : 0,
      endpoints: svc.clusters.find((x) => x.name === b.cluster)?.endpoints.length ?? 0,
    })),
    filters: route.filters.map((f) => f.type),
    ...(policy ? { policy } : {}),
  };
}

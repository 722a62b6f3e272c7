// Route matching: compiles a service's ordered route list once per config
// update, then answers "which route takes this request" without allocating
// more than the query-string parse some matches need. Exported for
// `ambit why`, which must say exactly what the data path does.
import type { RouteMatch, WaypointRoute } from "../../core/model/waypoint.js";

/** What matching needs from a request. Header names are lower case. */
export interface RouteRequest {
  method: string;
  /** Path with the query string, as sent (`/a/b?x=1`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  grpc: boolean;
}

type StrTest = (s: string) => boolean;

interface CompiledMatch {
  path?: StrTest;
  /** The literal prefix of a PathPrefix match, for ReplacePrefixMatch. */
  prefix?: string;
  headers?: { name: string; test: StrTest }[];
  query?: { name: string; test: StrTest }[];
  method?: string;
  grpcService?: StrTest;
  grpcMethod?: StrTest;
}

export interface CompiledRoute {
  route: WaypointRoute;
  match: CompiledMatch;
}

export interface RouteTable {
  http: CompiledRoute[];
  grpc: CompiledRoute[];
  /** True when the service has no routes at all: traffic goes to the service itself. */
  empty: boolean;
}

export interface RouteHit {
  route: WaypointRoute;
  /** Path without the query string. */
  path: string;
  /** The matched PathPrefix (normalized, no trailing slash), if any. */
  prefix?: string;
}

export class RouteCompileError extends Error {
  readonly code = "INVALID_FIELD";
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** A full-match regular expression (Gateway API regexes match the whole value). */
export function fullRegex(pattern: string, field: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new RouteCompileError(field, `invalid regular expression: ${(e as Error).message}`);
  }
}

export function normalizePrefix(p: string): string {
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function strTest(type: "Exact" | "RegularExpression", value: string, field: string): StrTest {
  if (type === "Exact") return (s) => s === value;
  const re = fullRegex(value, field);
  return (s) => re.test(s);
}

function compileMatch(m: RouteMatch, field: string): CompiledMatch {
  const out: CompiledMatch = {};
  if (m.path) {
    const v = m.path.value;
    if (m.path.type === "Exact") out.path = (s) => s === v;
    else if (m.path.type === "PathPrefix") {
      const p = normalizePrefix(v);
      out.prefix = p;
      out.path =
        p === "/" ? () => true : (s) => s === p || (s.startsWith(p) && s.charCodeAt(p.length) === 47);
    } else {
      const re = fullRegex(v, `${field}.path.value`);
      out.path = (s) => re.test(s);
    }
  }
  if (m.headers?.length)
    out.headers = m.headers.map((h, i) => ({
      name: h.name.toLowerCase(),
      test: strTest(h.type, h.value, `${field}.headers[${i}].value`),
    }));
  if (m.queryParams?.length)
    out.query = m.queryParams.map((q, i) => ({
      name: q.name,
      test: strTest(q.type, q.value, `${field}.queryParams[${i}].value`),
    }));
  if (m.method) out.method = m.method.toUpperCase();
  if (m.grpc) {
    if (m.grpc.service) out.grpcService = strTest(m.grpc.type, m.grpc.service, `${field}.grpc.service`);
    if (m.grpc.method) out.grpcMethod = strTest(m.grpc.type, m.grpc.method, `${field}.grpc.method`);
  }
  return out;
}

/** Compiles the ordered routes; a bad regex throws RouteCompileError naming the route and field. */
export function compileRoutes(routes: WaypointRoute[]): RouteTable {
  const http: CompiledRoute[] = [];
  const grpc: CompiledRoute[] = [];
  routes.forEach((route, i) => {
    const c = { route, match: compileMatch(route.match, `routes[${i}](${route.name}).match`) };
    (route.kind === "grpc" ? grpc : http).push(c);
  });
  return { http, grpc, empty: routes.length === 0 };
}

function headerValue(h: RouteRequest["headers"], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(",") : v;
}

function matches(m: CompiledMatch, req: RouteRequest, path: string, query: () => URLSearchParams): boolean {
  if (m.method !== undefined && m.method !== req.method) return false;
  if (m.path && !m.path(path)) return false;
  if (m.headers) {
    for (const h of m.headers) {
      const v = headerValue(req.headers, h.name);
      if (v === undefined || !h.test(v)) return false;
    }
  }
  if (m.query) {
    const q = query();
    for (const p of m.query) {
      const v = q.get(p.name);
      if (v === null || !p.test(v)) return false;
    }
  }
  if (m.grpcService || m.grpcMethod) {
    // gRPC paths are /package.Service/Method
    const slash = path.indexOf("/", 1);
    if (slash < 0) return false;
    if (m.grpcService && !m.grpcService(path.slice(1, slash))) return false;
    if (m.grpcMethod && !m.grpcMethod(path.slice(slash + 1))) return false;
  }
  return true;
}

/**
 * The route a request takes, or undefined (→ 404 / gRPC UNIMPLEMENTED).
 * gRPC requests try GRPCRoutes first, then HTTPRoutes; other requests only HTTPRoutes.
 */
export function matchRoute(table: RouteTable, req: RouteRequest): RouteHit | undefined {
  const q = req.url.indexOf("?");
  const path = q < 0 ? req.url : req.url.slice(0, q);
  let parsed: URLSearchParams | undefined;
  const query = () => (parsed ??= new URLSearchParams(q < 0 ? "" : req.url.slice(q + 1)));
  if (req.grpc) {
    for (const c of table.grpc) if (matches(c.match, req, path, query)) return { route: c.route, path };
  }
  for (const c of table.http)
    if (matches(c.match, req, path, query))
      return { route: c.route, path, ...(c.match.prefix ? { prefix: c.match.prefix } : {}) };
  return undefined;
}

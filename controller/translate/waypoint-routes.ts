// HTTPRoute / GRPCRoute rules (GAMMA: parentRefs naming a Service) → the
// waypoint's ordered route entries for that Service. One entry per rule ×
// match, sorted by Gateway API precedence across all routes of the Service:
// Exact path, then RegularExpression (implementation-specific: ahead of
// prefixes so that a regex is not shadowed by a catch-all), then the longest
// PathPrefix; then method, more header matches, more query matches; then the
// oldest route, then namespace/name, then rule and match order. GRPCRoute
// (waypoint-grpc-routes.ts): longer service, longer method, more headers,
// then the same tie-breaks.
// A rule with an invalid value (bad regex, unknown filter, unsupported field)
// is dropped and reported; the route's other rules and other routes stay.
import {
  type PathModifier,
  type RouteFilter,
  type RouteMatch,
  type WaypointRoute,
  type WeightedCluster,
} from "../../core/model/waypoint.js";
import type {
  GRPCRouteFilter,
  HTTPPathModifier,
  HTTPRoute,
  HTTPRouteFilter,
  HTTPRouteMatch,
} from "../provider/objects.js";

/** Why a rule or a reference did not resolve, in Gateway API reason terms. */
export interface RouteProblem {
  condition: "Accepted" | "ResolvedRefs";
  reason: "UnsupportedValue" | "BackendNotFound" | "InvalidKind" | "RefNotPermitted";
  field: string;
  message: string;
}

/** What the route translator needs to resolve references; pure lookups. */
export interface RouteResolver {
  /** backendRef → cluster name, or a problem (the cluster name then points nowhere: requests get 500). */
  backend(
    ref: { group?: string; kind?: string; name: string; namespace?: string; port?: number },
    routeNs: string,
    field: string,
  ): { cluster: string } | RouteProblem;
  /** ExtensionRef → a filter (FaultInjection), or a problem. */
  extension(
    ref: { group: string; kind: string; name: string },
    routeNs: string,
    field: string,
  ): RouteFilter | RouteProblem;
}

export interface RouteEntry {
  route: WaypointRoute;
  sort: SortKey;
}

interface SortKey {
  kind: "http" | "grpc";
  pathRank: number;
  pathLen: number;
  method: number;
  headers: number;
  query: number;
  grpcService: number;
  grpcMethod: number;
  created: string;
  ref: string;
  rule: number;
  match: number;
}

export class RuleError extends Error {
  constructor(readonly problem: RouteProblem) {
    super(problem.message);
  }
}

function isProblem(x: unknown): x is RouteProblem {
  return typeof x === "object" && x !== null && "reason" in x && "condition" in x;
}

/** Gateway API duration (`1h2m3s500ms`) → ms; "0s" → 0 (no timeout). */
export function parseDuration(v: string, field: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)/y;
  if (!v)
    throw new RuleError({
      condition: "Accepted",
      reason: "UnsupportedValue",
      field,
      message: "empty duration",
    });
  let total = 0;
  re.lastIndex = 0;
  while (re.lastIndex < v.length) {
    const m = re.exec(v);
    if (!m)
      throw new RuleError({
        condition: "Accepted",
        reason: "UnsupportedValue",
        field,
        message: `invalid duration ${JSON.stringify(v)}`,
      });
    const n = Number(m[1]);
    total += m[2] === "h" ? n * 3_600_000 : m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1000 : n;
  }
  return Math.round(total);
}

export function checkRegex(v: string, field: string): void {
  try {
    new RegExp(`^(?:${v})$`);
  } catch (e) {
    throw new RuleError({
      condition: "Accepted",
      reason: "UnsupportedValue",
      field,
      message: `invalid regular expression ${JSON.stringify(v)}: ${(e as Error).message}`,
    });
  }
}

function pathModifier(p: HTTPPathModifier, field: string, prefixOnly: boolean): PathModifier {
  if (p.type === "ReplaceFullPath") return { type: "ReplaceFullPath", value: p.replaceFullPath ?? "/" };
  if (p.type === "ReplacePrefixMatch") {
    if (!prefixOnly)
      throw new RuleError({
        condition: "Accepted",
        reason: "UnsupportedValue",
        field: `${field}.type`,
        message: "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
      });
    return { type: "ReplacePrefixMatch", value: p.replacePrefixMatch ?? "/" };
  }
  throw new RuleError({
    condition: "Accepted",
    reason: "UnsupportedValue",
    field: `${field}.type`,
    message: `unknown path modifier type ${String((p as { type: unknown }).type)}`,
  });
}

function mirrorPercent(m: {
  percent?: number;
  fraction?: { numerator: number; denominator?: number };
}): number {
  if (m.percent !== undefined) return m.percent;
  if (m.fraction) return (m.fraction.numerator / (m.fraction.denominator ?? 100)) * 100;
  return 100;
}

function filter(
  f: HTTPRouteFilter | GRPCRouteFilter,
  field: string,
  ns: string,
  r: RouteResolver,
  prefixOnly: boolean,
  problems: RouteProblem[],
): RouteFilter {
  const h = f as HTTPRouteFilter;
  switch (f.type) {
    case "RequestHeaderModifier":
      return { type: "RequestHeaderModifier", modifier: { ...h.requestHeaderModifier } };
    case "ResponseHeaderModifier":
      return { type: "ResponseHeaderModifier", modifier: { ...h.responseHeaderModifier } };
    case "URLRewrite": {
      const u = h.urlRewrite ?? {};
      return {
        type: "URLRewrite",
        ...(u.hostname ? { hostname: u.hostname } : {}),
        ...(u.path ? { path: pathModifier(u.path, `${field}.urlRewrite.path`, prefixOnly) } : {}),
      };
    }
    case "RequestRedirect": {
      const d = h.requestRedirect ?? {};
      return {
        type: "RequestRedirect",
        statusCode: d.statusCode ?? 302,
        ...(d.scheme ? { scheme: d.scheme } : {}),
        ...(d.hostname ? { hostname: d.hostname } : {}),
        ...(d.port !== undefined ? { port: d.port } : {}),
        ...(d.path ? { path: pathModifier(d.path, `${field}.requestRedirect.path`, prefixOnly) } : {}),
      };
    }
    case "RequestMirror": {
      const m = h.requestMirror;
      if (!m)
        throw new RuleError({
          condition: "Accepted",
          reason: "UnsupportedValue",
          field: `${field}.requestMirror`,
          message: "missing",
        });
      const b = r.backend(m.backendRef, ns, `${field}.requestMirror.backendRef`);
      if (isProblem(b)) {
        problems.push(b);
        // A mirror that does not resolve is dropped; the main path stays.
        return { type: "RequestMirror", cluster: "", percent: 0 };
      }
      return { type: "RequestMirror", cluster: b.cluster, percent: mirrorPercent(m) };
    }
    case "CORS": {
      const c = h.cors ?? {};
      return {
        type: "CORS",
        cors: {
          allowOrigins: c.allowOrigins ?? [],
          allowMethods: c.allowMethods ?? [],
          allowHeaders: c.allowHeaders ?? [],
          exposeHeaders: c.exposeHeaders ?? [],
          maxAgeSeconds: c.maxAge ?? 5,
          ...(c.allowCredentials ? { allowCredentials: true } : {}),
        },
      };
    }
    case "ExtensionRef": {
      const ref = f.extensionRef;
      if (!ref)
        throw new RuleError({
          condition: "Accepted",
          reason: "UnsupportedValue",
          field: `${field}.extensionRef`,
          message: "missing",
        });
      const x = r.extension(ref, ns, `${field}.extensionRef`);
      if (!isProblem(x)) return x;
      // Gateway API: a custom filter that does not resolve is not skipped;
      // the requests it would have seen get an error.
      problems.push(x);
      return { type: "Fault", fault: { abort: { httpStatus: 500, percent: 100 } } };
    }
    default:
      throw new RuleError({
        condition: "Accepted",
        reason: "UnsupportedValue",
        field: `${field}.type`,
        message: `filter type ${JSON.stringify(f.type)} is not supported`,
      });
  }
}

export function filters(
  list: (HTTPRouteFilter | GRPCRouteFilter)[] | undefined,
  field: string,
  ns: string,
  r: RouteResolver,
  prefixOnly: boolean,
  problems: RouteProblem[],
): RouteFilter[] {
  return (list ?? [])
    .map((f, i) => filter(f, `${field}[${i}]`, ns, r, prefixOnly, problems))
    .filter((f) => !(f.type === "RequestMirror" && f.cluster === ""));
}

export function backends(
  refs:
    | {
        group?: string;
        kind?: string;
        name: string;
        namespace?: string;
        port?: number;
        weight?: number;
        filters?: (HTTPRouteFilter | GRPCRouteFilter)[];
      }[]
    | undefined,
  field: string,
  ns: string,
  r: RouteResolver,
  prefixOnly: boolean,
  problems: RouteProblem[],
): WeightedCluster[] {
  return (refs ?? []).map((b, i) => {
    const f = `${field}[${i}]`;
    const resolved = r.backend(b, ns, f);
    let cluster: string;
    if (isProblem(resolved)) {
      problems.push(resolved);
      // a name no cluster has: requests that pick this backend get 500
      cluster = `invalid:${ns}/${b.name}`;
    } else cluster = resolved.cluster;
    const fs = filters(b.filters, `${f}.filters`, ns, r, prefixOnly, problems);
    return { cluster, weight: b.weight ?? 1, ...(fs.length ? { filters: fs } : {}) };
  });
}

function httpMatch(m: HTTPRouteMatch, field: string): RouteMatch {
  const out: RouteMatch = {};
  const type = m.path?.type ?? "PathPrefix";
  const value = m.path?.value ?? "/";
  if (type === "RegularExpression") checkRegex(value, `${field}.path.value`);
  else if (!value.startsWith("/"))
    throw new RuleError({
      condition: "Accepted",
      reason: "UnsupportedValue",
      field: `${field}.path.value`,
      message: "must start with /",
    });
  out.path = { type, value };
  const vm = (list: HTTPRouteMatch["headers"], name: string) =>
    (list ?? []).map((h, i) => {
      const t = h.type ?? "Exact";
      if (t === "RegularExpression") checkRegex(h.value, `${field}.${name}[${i}].value`);
      return { type: t, name: h.name, value: h.value };
    });
  if (m.headers?.length) out.headers = vm(m.headers, "headers");
  if (m.queryParams?.length) out.queryParams = vm(m.queryParams, "queryParams");
  if (m.method) out.method = m.method;
  return out;
}

export function created(o: { metadata: { creationTimestamp?: string } }): string {
  return o.metadata.creationTimestamp ?? "";
}

/** Compiles each rule; a rule that throws a RuleError is reported and dropped, the route's other rules stay. */
export function eachRule<R>(
  rules: readonly R[] | undefined,
  problems: RouteProblem[],
  compile: (rule: R, ri: number, field: string) => void,
): void {
  (rules ?? []).forEach((rule, ri) => {
    try {
      compile(rule, ri, `spec.rules[${ri}]`);
    } catch (e) {
      if (e instanceof RuleError) problems.push(e.problem);
      else throw e;
    }
  });
}

/** Entries for one HTTPRoute attached to a service (`problems` collects what to report). */
export function httpRouteEntries(rt: HTTPRoute, r: RouteResolver, problems: RouteProblem[]): RouteEntry[] {
  const ns = rt.metadata.namespace ?? "default";
  const out: RouteEntry[] = [];
  eachRule(rt.spec.rules, problems, (rule, ri, field) => {
    const matches = rule.matches?.length ? rule.matches : [{}];
    const compiled = matches.map((m, mi) => httpMatch(m, `${field}.matches[${mi}]`));
    const prefixOnly = compiled.every((m) => m.path?.type === "PathPrefix");
    const fs = filters(rule.filters, `${field}.filters`, ns, r, prefixOnly, problems);
    const bs = backends(rule.backendRefs, `${field}.backendRefs`, ns, r, prefixOnly, problems);
    const base: Omit<WaypointRoute, "name" | "match"> = { kind: "http", filters: fs, backends: bs };
    if (rule.timeouts?.request || rule.timeouts?.backendRequest) {
      const requestMs = rule.timeouts.request
        ? parseDuration(rule.timeouts.request, `${field}.timeouts.request`)
        : 0;
      const backendRequestMs = rule.timeouts.backendRequest
        ? parseDuration(rule.timeouts.backendRequest, `${field}.timeouts.backendRequest`)
        : 0;
      base.timeouts = {
        ...(requestMs ? { requestMs } : {}),
        ...(backendRequestMs ? { backendRequestMs } : {}),
      };
    }
    if (rule.retry) {
      base.retry = {
        attempts: rule.retry.attempts ?? 1,
        codes: rule.retry.codes ?? [],
        grpcCodes: [],
        backoffMs: rule.retry.backoff ? parseDuration(rule.retry.backoff, `${field}.retry.backoff`) : 25,
      };
    }
    compiled.forEach((match, mi) => {
      const p = match.path!;
      out.push({
        route: { name: `HTTPRoute/${ns}/${rt.metadata.name}/rule/${ri}/match/${mi}`, match, ...base },
        sort: {
          kind: "http",
          pathRank: p.type === "Exact" ? 3 : p.type === "RegularExpression" ? 2 : 1,
          pathLen: p.value.length,
          method: match.method ? 1 : 0,
          headers: match.headers?.length ?? 0,
          query: match.queryParams?.length ?? 0,
          grpcService: 0,
          grpcMethod: 0,
          created: created(rt),
          ref: `${ns}/${rt.metadata.name}`,
          rule: ri,
          match: mi,
        },
      });
    });
  });
  return out;
}

/** Gateway API precedence; entries earlier in the result win. */
export function compareEntries(a: SortKey, b: SortKey): number {
  return (
    b.pathRank - a.pathRank ||
    b.pathLen - a.pathLen ||
    b.grpcService - a.grpcService ||
    b.grpcMethod - a.grpcMethod ||
    b.method - a.method ||
    b.headers - a.headers ||
    b.query - a.query ||
    (a.created < b.created ? -1 : a.created > b.created ? 1 : 0) ||
    (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0) ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

export function sortEntries(entries: RouteEntry[]): WaypointRoute[] {
  return [...entries].sort((a, b) => compareEntries(a.sort, b.sort)).map((e) => e.route);
}

/** A match that an earlier entry of another route already has: that route wins, this one never sees requests. */
export interface ShadowedMatch {
  /** The losing entry (its route name says object, rule and match). */
  loser: WaypointRoute;
  winner: WaypointRoute;
}

function matchKey(r: WaypointRoute): string {
  const byName = <T extends { name: string }>(l: T[] | undefined) =>
    l ? [...l].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : undefined;
  const m = r.match;
  return JSON.stringify([
    r.kind,
    m.path ?? null,
    m.method ?? null,
    m.grpc ?? null,
    byName(m.headers) ?? null,
    byName(m.queryParams) ?? null,
  ]);
}

/** `<Kind>/<ns>/<name>` of the object an entry came from. */
export function routeObjectOf(r: WaypointRoute): string {
  return r.name.split("/rule/")[0]!;
}

/**
 * Identical matches in different routes of one Service (sorted entries in,
 * precedence already applied): every entry after the first with the same
 * match is shadowed. Gateway API resolves the conflict (oldest route, then
 * name); this makes it visible on the losing route.
 */
export function shadowedMatches(sorted: WaypointRoute[]): ShadowedMatch[] {
  const first = new Map<string, WaypointRoute>();
  const out: ShadowedMatch[] = [];
  for (const r of sorted) {
    const k = matchKey(r);
    const w = first.get(k);
    if (!w) first.set(k, r);
    else if (routeObjectOf(w) !== routeObjectOf(r)) out.push({ loser: r, winner: w });
  }
  return out;
}

// GRPCRoute rules (GAMMA) → the waypoint's route entries, with the same
// precedence and problem reporting as HTTPRoute (waypoint-routes.ts): method
// and header matches, filters and backends; retries from ambit's annotations
// (Gateway API has no retry for GRPCRoute).
import {
  grpcCodes as grpcCodeNumbers,
  type RouteMatch,
  type WaypointRoute,
} from "../../core/model/waypoint.js";
import type { GRPCRoute } from "../provider/objects.js";
import {
  backends,
  checkRegex,
  created,
  eachRule,
  filters,
  parseDuration,
  type RouteEntry,
  RuleError,
  type RouteProblem,
  type RouteResolver,
} from "./waypoint-routes.js";

export const ANNOTATION_GRPC_RETRY_CODES = "retry.ambit.dev/grpc-codes";
export const ANNOTATION_GRPC_RETRY_ATTEMPTS = "retry.ambit.dev/attempts";
export const ANNOTATION_GRPC_RETRY_BACKOFF = "retry.ambit.dev/backoff";

/**
 * Gateway API has no retry for GRPCRoute: ambit reads annotations, e.g.
 * `retry.ambit.dev/grpc-codes: UNAVAILABLE,RESOURCE_EXHAUSTED`,
 * `retry.ambit.dev/attempts: "2"`, `retry.ambit.dev/backoff: 25ms`.
 * Retries happen on trailers-only responses with those codes.
 */
function grpcRetry(rt: GRPCRoute): WaypointRoute["retry"] {
  const a = rt.metadata.annotations ?? {};
  const codes = a[ANNOTATION_GRPC_RETRY_CODES];
  if (!codes) return undefined;
  const field = (k: string) => `metadata.annotations[${k}]`;
  const grpcCodes = codes.split(",").map((c) => {
    const name = c.trim().toUpperCase().replace(/-/g, "_");
    const code = /^[0-9]+$/.test(name) ? Number(name) : grpcCodeNumbers[name];
    if (code === undefined || code > 16)
      throw new RuleError({
        condition: "Accepted",
        reason: "UnsupportedValue",
        field: field(ANNOTATION_GRPC_RETRY_CODES),
        message: `unknown gRPC status ${JSON.stringify(c.trim())}`,
      });
    return code;
  });
  const attemptsRaw = a[ANNOTATION_GRPC_RETRY_ATTEMPTS] ?? "1";
  if (!/^[0-9]+$/.test(attemptsRaw))
    throw new RuleError({
      condition: "Accepted",
      reason: "UnsupportedValue",
      field: field(ANNOTATION_GRPC_RETRY_ATTEMPTS),
      message: `not a number: ${JSON.stringify(attemptsRaw)}`,
    });
  const backoff = a[ANNOTATION_GRPC_RETRY_BACKOFF];
  return {
    attempts: Number(attemptsRaw),
    codes: [],
    grpcCodes,
    backoffMs: backoff ? parseDuration(backoff, field(ANNOTATION_GRPC_RETRY_BACKOFF)) : 25,
  };
}

export function grpcRouteEntries(rt: GRPCRoute, r: RouteResolver, problems: RouteProblem[]): RouteEntry[] {
  const ns = rt.metadata.namespace ?? "default";
  const out: RouteEntry[] = [];
  let retry: WaypointRoute["retry"];
  try {
    retry = grpcRetry(rt);
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
    problems.push(e.problem);
  }
  eachRule(rt.spec.rules, problems, (rule, ri, field) => {
    const matches = rule.matches?.length ? rule.matches : [{}];
    const compiled: RouteMatch[] = matches.map((m, mi) => {
      const f = `${field}.matches[${mi}]`;
      const out: RouteMatch = {};
      if (m.method && (m.method.service || m.method.method)) {
        const type = m.method.type ?? "Exact";
        if (type === "RegularExpression") {
          if (m.method.service) checkRegex(m.method.service, `${f}.method.service`);
          if (m.method.method) checkRegex(m.method.method, `${f}.method.method`);
        }
        out.grpc = {
          type,
          ...(m.method.service ? { service: m.method.service } : {}),
          ...(m.method.method ? { method: m.method.method } : {}),
        };
      }
      if (m.headers?.length)
        out.headers = m.headers.map((h, i) => {
          const t = h.type ?? "Exact";
          if (t === "RegularExpression") checkRegex(h.value, `${f}.headers[${i}].value`);
          return { type: t, name: h.name, value: h.value };
        });
      return out;
    });
    const fs = filters(rule.filters, `${field}.filters`, ns, r, false, problems);
    const bs = backends(rule.backendRefs, `${field}.backendRefs`, ns, r, false, problems);
    compiled.forEach((match, mi) => {
      out.push({
        route: {
          name: `GRPCRoute/${ns}/${rt.metadata.name}/rule/${ri}/match/${mi}`,
          kind: "grpc",
          match,
          filters: fs,
          backends: bs,
          ...(retry ? { retry } : {}),
        },
        sort: {
          kind: "grpc",
          pathRank: 0,
          pathLen: 0,
          method: 0,
          headers: match.headers?.length ?? 0,
          query: 0,
          grpcService: match.grpc?.type === "Exact" ? (match.grpc.service?.length ?? 0) : 0,
          grpcMethod: match.grpc?.type === "Exact" ? (match.grpc.method?.length ?? 0) : 0,
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

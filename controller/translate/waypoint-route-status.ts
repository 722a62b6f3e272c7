// Route results of the waypoint translation (pure): which parents a route
// attaches to and why not (GEP-1426 conflicts with GRPCRoutes), and the status
// conditions and errors each parent gets.
import {
  type Condition,
  type GRPCRoute,
  type HTTPRoute,
  type ParentReference,
  WAYPOINT_CONTROLLER_NAME,
} from "../provider/objects.js";
import type { TranslateContext } from "./context.js";
import type { RouteProblem } from "./waypoint-routes.js";

// Re-exported so callers of the translator see the one controllerName.
export { WAYPOINT_CONTROLLER_NAME };

export interface WaypointStatus {
  kind: "Gateway" | "HTTPRoute" | "GRPCRoute";
  namespace: string;
  name: string;
  status: Record<string, unknown>;
}

export function cond(type: string, ok: boolean, reason: string, message = ""): Condition {
  return { type, status: ok ? "True" : "False", reason, message };
}

export type AnyRoute = HTTPRoute | GRPCRoute;

/**
 * GEP-1426 (route types): when a GRPCRoute and an HTTPRoute attach to the
 * same Service (on overlapping ports: a parentRef without a port covers them
 * all), the GRPCRoute wins and the HTTPRoute's parent is not accepted, reason
 * Conflicted; its rules are not used for that Service. Mutates the results
 * and removes the losers from routesBySvc.
 */
export function rejectHttpRoutesBesideGrpc(
  routesBySvc: Map<string, { rt: AnyRoute; result: ParentResult; port?: number }[]>,
): void {
  const overlaps = (a?: number, b?: number) => a === undefined || b === undefined || a === b;
  for (const [svcKey, list] of routesBySvc) {
    const grpc = list.filter((x) => x.rt.kind === "GRPCRoute");
    if (!grpc.length) continue;
    const kept = list.filter((x) => {
      if (x.rt.kind !== "HTTPRoute") return true;
      const winner = grpc.find((g) => overlaps(g.port, x.port));
      if (!winner) return true;
      const svc = `${x.result.parentRef.namespace ?? x.rt.metadata.namespace ?? "default"}/${x.result.parentRef.name}`;
      const port = x.port ?? winner.port;
      x.result.notAccepted = {
        reason: "Conflicted",
        message: `GRPCRoute ${winner.rt.metadata.namespace ?? "default"}/${winner.rt.metadata.name} is attached to Service ${svc}${port !== undefined ? ` port ${port}` : ""} too; a GRPCRoute takes precedence over an HTTPRoute for the same Service (GEP-1426)`,
      };
      delete x.result.attached;
      return false;
    });
    if (kept.length === list.length) continue;
    if (kept.length) routesBySvc.set(svcKey, kept);
    else routesBySvc.delete(svcKey);
  }
}

export interface ParentResult {
  parentRef: ParentReference;
  problems: RouteProblem[];
  attached?: string;
  notAccepted?: { reason: string; message: string };
  /** Entries this route contributed, and those that an identical match of an older route shadows. */
  entries?: number;
  conflicts?: { field: string; message: string }[];
}

/**
 * A route's status: per parent, Accepted (or Conflicted / UnsupportedValue),
 * PartiallyInvalid for dropped or shadowed rules, ResolvedRefs; and the
 * errors and warnings naming the route's fields.
 */
export function routeStatus(rt: AnyRoute, results: ParentResult[], ctx: TranslateContext): WaypointStatus {
  const ns = rt.metadata.namespace ?? "default";
  const parents = results.map((r) => {
    const conditions: Condition[] = [];
    if (r.notAccepted) {
      conditions.push(cond("Accepted", false, r.notAccepted.reason, r.notAccepted.message));
      ctx.warn(
        r.notAccepted.reason === "Conflicted" ? "INVALID_FIELD" : "MISSING_REFERENCE",
        rt,
        "spec.parentRefs",
        r.notAccepted.message,
      );
    } else {
      const invalid = r.problems.filter((x) => x.condition === "Accepted");
      const refs = r.problems.filter((x) => x.condition === "ResolvedRefs");
      const rules = rt.spec.rules?.length ?? 0;
      const droppedRules = new Set(invalid.map((x) => /^spec\.rules\[(\d+)\]/.exec(x.field)?.[1])).size;
      const conflicts = r.conflicts ?? [];
      if (conflicts.length && conflicts.length >= (r.entries ?? 0) && !invalid.length)
        conditions.push(
          cond("Accepted", false, "Conflicted", conflicts.map((x) => `${x.field}: ${x.message}`).join("; ")),
        );
      else if (invalid.length && droppedRules >= rules)
        conditions.push(
          cond(
            "Accepted",
            false,
            "UnsupportedValue",
            invalid.map((x) => `${x.field}: ${x.message}`).join("; "),
          ),
        );
      else conditions.push(cond("Accepted", true, "Accepted", `attached to waypoint ${r.attached}`));
      const shadowed = conflicts.length && conflicts.length < (r.entries ?? 0);
      if (invalid.length && droppedRules < rules)
        conditions.push(
          cond(
            "PartiallyInvalid",
            true,
            "UnsupportedValue",
            [
              `rules dropped: ${invalid.map((x) => `${x.field}: ${x.message}`).join("; ")}`,
              ...(shadowed
                ? [`shadowed: ${conflicts.map((x) => `${x.field}: ${x.message}`).join("; ")}`]
                : []),
            ].join("; "),
          ),
        );
      else if (shadowed)
        conditions.push(
          cond(
            "PartiallyInvalid",
            true,
            "Conflicted",
            `shadowed: ${conflicts.map((x) => `${x.field}: ${x.message}`).join("; ")}`,
          ),
        );
      for (const x of conflicts) ctx.warn("INVALID_FIELD", rt, x.field, `Conflicted: ${x.message}`);
      conditions.push(
        refs.length
          ? cond(
              "ResolvedRefs",
              false,
              refs[0]!.reason,
              refs.map((x) => `${x.field}: ${x.message}`).join("; "),
            )
          : cond("ResolvedRefs", true, "ResolvedRefs"),
      );
      for (const x of r.problems)
        ctx.error(
          x.reason === "BackendNotFound" ? "MISSING_REFERENCE" : "INVALID_FIELD",
          rt,
          x.field,
          `${x.reason}: ${x.message}`,
        );
    }
    return { parentRef: r.parentRef, controllerName: WAYPOINT_CONTROLLER_NAME, conditions };
  });
  return { kind: rt.kind, namespace: ns, name: rt.metadata.name, status: { parents } };
}

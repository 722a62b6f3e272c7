// Status as data, from a snapshot and what the translator said about it (pure):
//   - ambit.dev objects: Accepted True, or False with the translator's error;
//   - the GatewayClass ambit-waypoint: Accepted;
//   - Gateways of that class: Accepted (Programmed is the waypoint deployer's);
//   - HTTPRoutes / GRPCRoutes: one status.parents entry per Service parentRef
//     (the GAMMA mesh pattern), Accepted and ResolvedRefs.
// The leader hands the result to StatusWriter, which fills observedGeneration
// and transition times and writes only what changed.
import type { ObjectError } from "../../../core/errors/errors.js";
import {
  type ClusterSnapshot,
  type Condition,
  type GRPCRoute,
  type HTTPRoute,
  type KubeObject,
  WAYPOINT_GATEWAY_CLASS,
} from "../objects.js";
import { WAYPOINT_CONTROLLER_NAME } from "./gateway-class.js";
import type { StatusUpdate } from "./status-writer.js";

type Cond = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

function keyOf(kind: string, namespace: string | undefined, name: string | undefined): string {
  return `${kind} ${namespace ?? ""}/${name ?? ""}`;
}

/** Errors (and warnings) by the object they name. */
function index(errors: readonly ObjectError[]): Map<string, ObjectError[]> {
  const m = new Map<string, ObjectError[]>();
  for (const e of errors) {
    const k = keyOf(e.object.kind, e.object.namespace, e.object.name);
    m.set(k, [...(m.get(k) ?? []), e]);
  }
  return m;
}

function accepted(errs: ObjectError[] | undefined, warns: ObjectError[] | undefined): Cond {
  if (errs?.length)
    return {
      type: "Accepted",
      status: "False",
      reason: "Invalid",
      message: errs
        .map((e) => e.message)
        .join("; ")
        .slice(0, 32000),
    };
  if (warns?.length)
    return {
      type: "Accepted",
      status: "True",
      reason: "AcceptedWithWarnings",
      message: warns
        .map((e) => e.message)
        .join("; ")
        .slice(0, 32000),
    };
  return { type: "Accepted", status: "True", reason: "Accepted", message: "" };
}

function update(o: KubeObject, status: Record<string, unknown>): StatusUpdate {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, status };
}

/** A reference to a Service (core group) in the route's own namespace or another. */
function isServiceParent(p: { group?: string; kind?: string }): boolean {
  return (p.group ?? "gateway.networking.k8s.io") === "" && p.kind === "Service";
}

function routeStatus(
  r: HTTPRoute | GRPCRoute,
  snapshot: ClusterSnapshot,
  errs: ObjectError[] | undefined,
  warns: ObjectError[] | undefined,
): StatusUpdate | undefined {
  const parents = (r.spec.parentRefs ?? []).filter(isServiceParent);
  if (parents.length === 0) return undefined;
  const services = new Set(snapshot.services.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  const acc = accepted(errs, warns);
  return update(r, {
    parents: parents.map((p) => {
      const ns = p.namespace ?? r.metadata.namespace;
      const exists = services.has(`${ns}/${p.name}`);
      const conditions: Cond[] = [
        exists
          ? acc
          : {
              type: "Accepted",
              status: "False",
              reason: "NoMatchingParent",
              message: `Service ${ns}/${p.name} not found`,
            },
        errs?.some((e) => /backend/i.test(e.field ?? "") || e.code === "MISSING_REFERENCE")
          ? {
              type: "ResolvedRefs",
              status: "False",
              reason: "BackendNotFound",
              message: (errs ?? [])
                .map((e) => e.message)
                .join("; ")
                .slice(0, 32000),
            }
          : { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "" },
      ];
      const parentRef: Record<string, unknown> = { group: "", kind: "Service", name: p.name };
      if (p.namespace) parentRef.namespace = p.namespace;
      if (p.port !== undefined) parentRef.port = p.port;
      if (p.sectionName !== undefined) parentRef.sectionName = p.sectionName;
      return { parentRef, controllerName: WAYPOINT_CONTROLLER_NAME, conditions };
    }),
  });
}

export function statusFromTranslation(
  snapshot: ClusterSnapshot,
  result: { errors: readonly ObjectError[]; warnings: readonly ObjectError[] },
): StatusUpdate[] {
  const errs = index(result.errors);
  const warns = index(result.warnings);
  const of = (o: KubeObject) =>
    [
      errs.get(keyOf(o.kind, o.metadata.namespace, o.metadata.name)),
      warns.get(keyOf(o.kind, o.metadata.namespace, o.metadata.name)),
    ] as const;
  const out: StatusUpdate[] = [];

  for (const list of [
    snapshot.authorizationPolicies,
    snapshot.peerAuthentications,
    snapshot.requestAuthentications,
    snapshot.faultInjections,
    snapshot.trafficPolicies,
  ] as KubeObject[][]) {
    for (const o of list) out.push(update(o, { conditions: [accepted(...of(o))] }));
  }
  for (const gc of snapshot.gatewayClasses) {
    if (gc.spec.controllerName !== WAYPOINT_CONTROLLER_NAME) continue;
    out.push(
      update(gc, {
        conditions: [
          {
            type: "Accepted",
            status: "True",
            reason: "Accepted",
            message: "Handled by the ambit controller",
          },
        ],
      }),
    );
  }
  const ourClasses = new Set(
    snapshot.gatewayClasses
      .filter((c) => c.spec.controllerName === WAYPOINT_CONTROLLER_NAME)
      .map((c) => c.metadata.name),
  );
  ourClasses.add(WAYPOINT_GATEWAY_CLASS);
  for (const gw of snapshot.gateways) {
    if (!ourClasses.has(gw.spec.gatewayClassName)) continue;
    out.push(update(gw, { conditions: [accepted(...of(gw))] }));
  }
  for (const r of [...snapshot.httpRoutes, ...snapshot.grpcRoutes]) {
    const u = routeStatus(r, snapshot, ...of(r));
    if (u) out.push(u);
  }
  return out;
}

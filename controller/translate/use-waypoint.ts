// Waypoint binding: `ambit.dev/use-waypoint=<gateway>` on a Service (wins) or
// on its Namespace sends the Service's traffic through that Gateway, which
// must be of class ambit-waypoint. `none` opts a Service out. As in Istio,
// `ambit.dev/use-waypoint-namespace` names a Gateway in another namespace,
// and the Gateway's `ambit.dev/waypoint-for` label (service (default) |
// workload | all | none) says which kind of traffic it takes.
import type { GatewayAddress } from "../../core/model/types.js";
import {
  type Gateway,
  type KubeObject,
  LABEL_USE_WAYPOINT,
  type Pod,
  type Service,
  WAYPOINT_GATEWAY_CLASS,
} from "../provider/objects.js";
import type { TranslateContext } from "./context.js";

export const LABEL_USE_WAYPOINT_NAMESPACE = "ambit.dev/use-waypoint-namespace";
export const LABEL_WAYPOINT_FOR = "ambit.dev/waypoint-for";
export const HBONE_PORT = 15008;

type TrafficKind = "service" | "workload";

/** The Gateway an object asks for through its own labels: a name, "none", or nothing. */
function requested(
  o: KubeObject | undefined,
): { gateway: string; namespace: string; from: KubeObject } | "none" | undefined {
  const labels = o?.metadata.labels;
  const name = labels?.[LABEL_USE_WAYPOINT];
  if (!o || name === undefined || name === "") return undefined;
  if (name === "none") return "none";
  return {
    gateway: name,
    namespace: labels?.[LABEL_USE_WAYPOINT_NAMESPACE] || o.metadata.namespace || o.metadata.name,
    from: o,
  };
}

function waypointFor(g: Gateway): string {
  return g.metadata.labels?.[LABEL_WAYPOINT_FOR] ?? "service";
}

function isSelf(o: KubeObject, gw: { gateway: string; namespace: string }): boolean {
  // The waypoint's own Service and pods never go through themselves.
  if (o.kind === "Service") return o.metadata.name === gw.gateway && o.metadata.namespace === gw.namespace;
  return (
    o.metadata.labels?.["gateway.networking.k8s.io/gateway-name"] === gw.gateway &&
    o.metadata.namespace === gw.namespace
  );
}

/** The address ztunnels send to: an IP the Gateway declares, else its Service hostname (as istiod does). */
export function waypointAddress(ctx: TranslateContext, g: Gateway): GatewayAddress {
  const declared = [...(g.spec.addresses ?? []), ...(g.status?.addresses ?? [])].find(
    (a) => (a.type === undefined || a.type === "IPAddress") && /^[0-9a-f.:]+$/i.test(a.value),
  );
  const ns = g.metadata.namespace ?? "default";
  if (declared) return { address: declared.value, hboneMtlsPort: HBONE_PORT };
  return {
    hostname: { namespace: ns, hostname: ctx.serviceHostname(g.metadata.name, ns) },
    hboneMtlsPort: HBONE_PORT,
  };
}

function resolve(ctx: TranslateContext, o: Service | Pod, kind: TrafficKind): GatewayAddress | undefined {
  const own = requested(o);
  const ns = ctx.namespaces.get(o.metadata.namespace ?? "default");
  const want = own ?? requested(ns);
  if (want === undefined || want === "none") return undefined;
  if (isSelf(o, want)) return undefined;
  const field = `metadata.labels[${LABEL_USE_WAYPOINT}]`;
  const gw = ctx.gateways.get(`${want.namespace}/${want.gateway}`);
  if (!gw) {
    ctx.error(
      "MISSING_REFERENCE",
      want.from,
      field,
      `Gateway ${want.namespace}/${want.gateway} does not exist; no waypoint is used`,
    );
    return undefined;
  }
  if (gw.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) {
    ctx.error(
      "INVALID_FIELD",
      want.from,
      field,
      `Gateway ${want.namespace}/${want.gateway} has gatewayClassName ${gw.spec.gatewayClassName}, not ${WAYPOINT_GATEWAY_CLASS}; no waypoint is used`,
    );
    return undefined;
  }
  const forWhat = waypointFor(gw);
  if (forWhat !== "all" && forWhat !== kind) return undefined;
  return waypointAddress(ctx, gw);
}

export function serviceWaypoint(ctx: TranslateContext, s: Service): GatewayAddress | undefined {
  return resolve(ctx, s, "service");
}

export function workloadWaypoint(ctx: TranslateContext, p: Pod): GatewayAddress | undefined {
  return resolve(ctx, p, "workload");
}

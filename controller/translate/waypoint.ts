// Waypoint translation (pure): Gateways of class ambit-waypoint → one plan
// per waypoint with a WaypointService for each Service that uses it (routes
// from HTTPRoute/GRPCRoute parentRefs to the Service, clusters with their
// endpoints, TrafficPolicy, RequestAuthentication and L7 AuthorizationPolicy),
// plus status conditions as data (Gateway Accepted/Programmed; route
// Accepted/ResolvedRefs per parent, with Gateway API reasons) and errors that
// name object and field. Bad parts are left out; the rest translates.
import type { ObjectError } from "../../core/errors/errors.js";
import type { AppProtocol, GatewayAddress, MeshService, MeshWorkload } from "../../core/model/types.js";
import {
  clusterName,
  type JwtRule,
  type L7AuthzPolicy,
  type RateLimitPolicy,
  type RouteFilter,
  type WaypointCluster,
  type WaypointProtocol,
  type WaypointService,
} from "../../core/model/waypoint.js";
import {
  type ClusterSnapshot,
  type Gateway,
  type ParentReference,
  type Service,
  WAYPOINT_GATEWAY_CLASS,
} from "../provider/objects.js";
import { DEFAULT_TRANSLATE_OPTIONS, TranslateContext, type TranslateOptions } from "./context.js";
import { serviceWaypoint, waypointAddress } from "./use-waypoint.js";
import {
  type AnyRoute,
  cond,
  type ParentResult,
  rejectHttpRoutesBesideGrpc,
  routeStatus,
  type WaypointStatus,
} from "./waypoint-route-status.js";

export type { WaypointStatus } from "./waypoint-route-status.js";

import { clusterPolicy, faultPolicy, jwtRules, l7Authz, PolicyError, targets } from "./waypoint-policy.js";
import { grpcRouteEntries } from "./waypoint-grpc-routes.js";
import {
  httpRouteEntries,
  type RouteEntry,
  type RouteProblem,
  type RouteResolver,
  routeObjectOf,
  shadowedMatches,
  sortEntries,
} from "./waypoint-routes.js";

export const HBONE_LISTENER_PORT = 15008;

export interface WaypointPlan {
  /** `<ns>/<name>` of the Gateway. */
  gateway: string;
  namespace: string;
  name: string;
  address: GatewayAddress;
  /** Sorted by key; each is one ambit.v1.WaypointService resource. */
  services: WaypointService[];
}

/** A status to write (same shape as controller/provider/kube/status-writer's StatusUpdate). */

export interface WaypointTranslation {
  waypoints: WaypointPlan[];
  statuses: WaypointStatus[];
  errors: ObjectError[];
  warnings: ObjectError[];
}

function protocolOf(p: AppProtocol): WaypointProtocol {
  return p === "http" ? "http" : p === "http2" ? "http2" : p === "grpc" ? "grpc" : "tcp";
}

function isServiceRef(p: ParentReference): boolean {
  return (p.kind ?? "Gateway") === "Service" && (p.group ?? "") in { "": 1, core: 1 };
}

function isGatewayRef(p: ParentReference): boolean {
  return (
    (p.kind ?? "Gateway") === "Gateway" &&
    (p.group ?? "gateway.networking.k8s.io") === "gateway.networking.k8s.io"
  );
}

export function translateWaypoints(
  snapshot: ClusterSnapshot,
  mesh: { services: MeshService[]; workloads: MeshWorkload[] },
  options: Partial<TranslateOptions> = {},
): WaypointTranslation {
  const ctx = new TranslateContext(snapshot, { ...DEFAULT_TRANSLATE_OPTIONS, ...options });
  // use-waypoint resolution reports its own errors in the mesh translation: use a scratch context here
  const scratch = new TranslateContext(snapshot, ctx.opts);
  const statuses: WaypointStatus[] = [];
  const meshByKey = new Map(mesh.services.map((s) => [s.key, s]));
  const svcByRef = new Map(
    snapshot.services.map((s) => [`${s.metadata.namespace ?? "default"}/${s.metadata.name}`, s]),
  );
  const keyOf = (s: Service) =>
    `${s.metadata.namespace ?? "default"}/${ctx.serviceHostname(s.metadata.name, s.metadata.namespace ?? "default")}`;

  // ---- Gateways ----
  const gateways = snapshot.gateways.filter((g) => g.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS);
  const plans = new Map<string, { gw: Gateway; plan: WaypointPlan; addrKey: string }>();
  for (const gw of gateways) {
    const ns = gw.metadata.namespace ?? "default";
    const hbone = gw.spec.listeners.some((l) => l.port === HBONE_LISTENER_PORT && l.protocol === "HBONE");
    const address = waypointAddress(ctx, gw);
    if (!hbone) {
      ctx.error(
        "INVALID_FIELD",
        gw,
        "spec.listeners",
        `a waypoint needs a listener on port ${HBONE_LISTENER_PORT} with protocol HBONE`,
      );
      statuses.push({
        kind: "Gateway",
        namespace: ns,
        name: gw.metadata.name,
        status: {
          conditions: [
            cond(
              "Accepted",
              false,
              "ListenersNotValid",
              `needs a listener on port ${HBONE_LISTENER_PORT} with protocol HBONE`,
            ),
            cond("Programmed", false, "Invalid", "not accepted"),
          ],
        },
      });
      continue;
    }
    const addrValue = address.address ?? address.hostname!.hostname;
    statuses.push({
      kind: "Gateway",
      namespace: ns,
      name: gw.metadata.name,
      status: {
        addresses: [{ type: address.address ? "IPAddress" : "Hostname", value: addrValue }],
        conditions: [
          cond("Accepted", true, "Accepted"),
          cond("Programmed", true, "Programmed", `waypoint at ${addrValue}:${HBONE_LISTENER_PORT}`),
        ],
      },
    });
    plans.set(`${ns}/${gw.metadata.name}`, {
      gw,
      addrKey: JSON.stringify(address),
      plan: {
        gateway: `${ns}/${gw.metadata.name}`,
        namespace: ns,
        name: gw.metadata.name,
        address,
        services: [],
      },
    });
  }
  const planByAddr = new Map([...plans.values()].map((p) => [p.addrKey, p]));

  // ---- endpoints ----
  const endpointsOf = (svcKey: string, port: number) => {
    const out: { ip: string; port: number; identity?: string; workload: string; namespace: string }[] = [];
    for (const w of mesh.workloads) {
      if (!w.healthy || !w.ips[0]) continue;
      const identity =
        w.tunnel === "hbone"
          ? `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`
          : undefined;
      for (const p of w.services[svcKey] ?? [])
        if (p.servicePort === port && p.targetPort > 0)
          out.push({
            ip: w.ips[0],
            port: p.targetPort,
            ...(identity ? { identity } : {}),
            workload: w.workloadName || w.name,
            namespace: w.namespace,
          });
    }
    return out.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
  };

  // ---- TrafficPolicies by target Service ----
  const trafficBySvc = new Map<
    string,
    { policy: ReturnType<typeof clusterPolicy>["policy"]; rateLimit?: RateLimitPolicy }
  >();
  for (const tp of snapshot.trafficPolicies) {
    const ns = tp.metadata.namespace ?? "default";
    try {
      const converted = clusterPolicy(tp);
      targets(tp).forEach((t, i) => {
        if (t.kind !== "Service") {
          ctx.error(
            "INVALID_FIELD",
            tp,
            `spec.targetRefs[${i}].kind`,
            `TrafficPolicy targets Services, not ${t.kind}`,
          );
          return;
        }
        const ref = `${t.namespace ?? ns}/${t.name}`;
        if (!svcByRef.has(ref))
          ctx.warn("MISSING_REFERENCE", tp, `spec.targetRefs[${i}]`, `Service ${ref} does not exist`);
        trafficBySvc.set(ref, converted);
      });
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      ctx.error("INVALID_FIELD", tp, e.field, e.message);
    }
  }

  // ---- L7 policies by target (Service `ns/name` or Gateway `gw:ns/name`) ----
  const authzByTarget = new Map<string, L7AuthzPolicy[]>();
  for (const ap of snapshot.authorizationPolicies) {
    const ts = targets(ap);
    if (!ts.length) continue; // selector/namespace policies are ztunnel's (L4)
    const ns = ap.metadata.namespace ?? "default";
    try {
      const p = l7Authz(ap, ctx.opts.trustDomain);
      for (const t of ts) {
        const key =
          t.kind === "Gateway"
            ? `gw:${t.namespace ?? ns}/${t.name}`
            : t.kind === "Service"
              ? `${t.namespace ?? ns}/${t.name}`
              : undefined;
        if (!key) {
          ctx.error(
            "INVALID_FIELD",
            ap,
            "spec.targetRefs",
            `targets must be a Service or a Gateway, not ${t.kind}`,
          );
          continue;
        }
        authzByTarget.set(key, [...(authzByTarget.get(key) ?? []), p]);
      }
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      ctx.error("INVALID_FIELD", ap, e.field, e.message);
    }
  }
  const jwtByTarget = new Map<string, JwtRule[]>();
  for (const ra of snapshot.requestAuthentications) {
    const ns = ra.metadata.namespace ?? "default";
    try {
      const rules = jwtRules(ra);
      for (const t of targets(ra)) {
        const key =
          t.kind === "Gateway" ? `gw:${t.namespace ?? ns}/${t.name}` : `${t.namespace ?? ns}/${t.name}`;
        jwtByTarget.set(key, [...(jwtByTarget.get(key) ?? []), ...rules]);
      }
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      ctx.error("INVALID_FIELD", ra, e.field, e.message);
    }
  }

  // ---- routes: parent results per route ----
  const routes: AnyRoute[] = [...snapshot.httpRoutes, ...snapshot.grpcRoutes];
  const parentResults = new Map<AnyRoute, ParentResult[]>();
  const routesBySvc = new Map<string, { rt: AnyRoute; result: ParentResult; port?: number }[]>();
  for (const rt of routes) {
    const ns = rt.metadata.namespace ?? "default";
    const results: ParentResult[] = [];
    for (const pr of rt.spec.parentRefs ?? []) {
      if (isGatewayRef(pr)) {
        const gw = ctx.gateways.get(`${pr.namespace ?? ns}/${pr.name}`);
        if (gw?.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) continue; // another controller's Gateway
        results.push({
          parentRef: pr,
          problems: [],
          notAccepted: {
            reason: "NotAllowedByListeners",
            message:
              "a waypoint takes routes through parentRefs to the Services that use it (GAMMA), not to the Gateway",
          },
        });
        continue;
      }
      if (!isServiceRef(pr)) continue;
      const ref = `${pr.namespace ?? ns}/${pr.name}`;
      const svc = svcByRef.get(ref);
      const r: ParentResult = { parentRef: pr, problems: [] };
      results.push(r);
      if (!svc) {
        r.notAccepted = { reason: "NoMatchingParent", message: `Service ${ref} does not exist` };
        continue;
      }
      if ((pr.namespace ?? ns) !== ns) {
        r.notAccepted = {
          reason: "NotAllowedByListeners",
          message: "routes for a Service in another namespace (consumer routes) are not supported",
        };
        continue;
      }
      if (pr.port !== undefined && !(svc.spec.ports ?? []).some((p) => p.port === pr.port)) {
        r.notAccepted = { reason: "NoMatchingParent", message: `Service ${ref} has no port ${pr.port}` };
        continue;
      }
      const addr = serviceWaypoint(scratch, svc);
      const plan = addr ? planByAddr.get(JSON.stringify(addr)) : undefined;
      if (!plan) {
        r.notAccepted = {
          reason: "NoMatchingParent",
          message: `Service ${ref} does not use a waypoint (label it ambit.dev/use-waypoint=<gateway>)`,
        };
        continue;
      }
      r.attached = plan.plan.gateway;
      const k = keyOf(svc);
      routesBySvc.set(k, [
        ...(routesBySvc.get(k) ?? []),
        { rt, result: r, ...(pr.port !== undefined ? { port: pr.port } : {}) },
      ]);
    }
    parentResults.set(rt, results);
  }
  rejectHttpRoutesBesideGrpc(routesBySvc);

  // ---- services of each waypoint ----
  for (const s of snapshot.services) {
    const addr = serviceWaypoint(scratch, s);
    if (!addr) continue;
    const p = planByAddr.get(JSON.stringify(addr));
    if (!p) continue;
    const key = keyOf(s);
    const ms = meshByKey.get(key);
    if (!ms) continue;
    const ns = s.metadata.namespace ?? "default";
    const clusters = new Map<string, WaypointCluster>();
    const addCluster = (target: Service, port: number): string => {
      const tk = keyOf(target);
      const name = clusterName(tk, port);
      if (!clusters.has(name)) {
        const tms = meshByKey.get(tk);
        const proto = tms?.ports.find((x) => x.port === port)?.appProtocol ?? "http";
        const tp = trafficBySvc.get(`${target.metadata.namespace ?? "default"}/${target.metadata.name}`);
        clusters.set(name, {
          name,
          service: tk,
          port,
          protocol: protocolOf(proto) === "tcp" ? "http" : protocolOf(proto),
          endpoints: endpointsOf(tk, port),
          ...(tp && Object.keys(tp.policy).length ? { policy: tp.policy } : {}),
        });
      }
      return name;
    };
    for (const port of ms.ports) addCluster(s, port.port);
    const resolver: RouteResolver = {
      backend(ref, routeNs, field) {
        if ((ref.group ?? "") !== "" && ref.group !== "core")
          return {
            condition: "ResolvedRefs",
            reason: "InvalidKind",
            field: `${field}.group`,
            message: `backend group ${ref.group} is not supported`,
          };
        if ((ref.kind ?? "Service") !== "Service")
          return {
            condition: "ResolvedRefs",
            reason: "InvalidKind",
            field: `${field}.kind`,
            message: `backend kind ${ref.kind} is not supported`,
          };
        const bns = ref.namespace ?? routeNs;
        if (bns !== routeNs)
          return {
            condition: "ResolvedRefs",
            reason: "RefNotPermitted",
            field: `${field}.namespace`,
            message: `backend in namespace ${bns}: cross-namespace references are not permitted`,
          };
        const target = svcByRef.get(`${bns}/${ref.name}`);
        if (!target)
          return {
            condition: "ResolvedRefs",
            reason: "BackendNotFound",
            field: `${field}.name`,
            message: `Service ${bns}/${ref.name} not found`,
          };
        const ports = target.spec.ports ?? [];
        const port = ref.port ?? (ports.length === 1 ? ports[0]!.port : undefined);
        if (port === undefined)
          return {
            condition: "ResolvedRefs",
            reason: "UnsupportedValue",
            field: `${field}.port`,
            message: `port is required: Service ${bns}/${ref.name} has ${ports.length} ports`,
          };
        if (!ports.some((x) => x.port === port))
          return {
            condition: "ResolvedRefs",
            reason: "BackendNotFound",
            field: `${field}.port`,
            message: `Service ${bns}/${ref.name} has no port ${port}`,
          };
        return { cluster: addCluster(target, port) };
      },
      extension(ref, routeNs, field): RouteFilter | RouteProblem {
        if (ref.group !== "ambit.dev" || ref.kind !== "FaultInjection")
          return {
            condition: "ResolvedRefs",
            reason: "InvalidKind",
            field,
            message: `extension ${ref.group}/${ref.kind} is not supported (ambit.dev/FaultInjection is)`,
          };
        const fi = snapshot.faultInjections.find(
          (f) => (f.metadata.namespace ?? "default") === routeNs && f.metadata.name === ref.name,
        );
        if (!fi)
          return {
            condition: "ResolvedRefs",
            reason: "BackendNotFound",
            field,
            message: `FaultInjection ${routeNs}/${ref.name} not found`,
          };
        try {
          return { type: "Fault", fault: faultPolicy(fi) };
        } catch (e) {
          if (!(e instanceof PolicyError)) throw e;
          ctx.error("INVALID_FIELD", fi, e.field, e.message);
          return {
            condition: "ResolvedRefs",
            reason: "UnsupportedValue",
            field,
            message: `FaultInjection ${routeNs}/${ref.name} is invalid: ${e.message}`,
          };
        }
      },
    };
    const entries: RouteEntry[] = [];
    const resultOf = new Map<string, ParentResult>();
    for (const { rt, result } of routesBySvc.get(key) ?? []) {
      const probs: RouteProblem[] = [];
      const own =
        rt.kind === "HTTPRoute"
          ? httpRouteEntries(rt, resolver, probs)
          : grpcRouteEntries(rt, resolver, probs);
      entries.push(...own);
      result.entries = (result.entries ?? 0) + own.length;
      resultOf.set(`${rt.kind}/${rt.metadata.namespace ?? "default"}/${rt.metadata.name}`, result);
      // a route attached to several services resolves the same way for each: keep one copy
      for (const pb of probs)
        if (!result.problems.some((x) => x.field === pb.field && x.message === pb.message))
          result.problems.push(pb);
    }
    const sorted = sortEntries(entries);
    for (const { loser, winner } of shadowedMatches(sorted)) {
      const r = resultOf.get(routeObjectOf(loser));
      const at = /\/rule\/(\d+)\/match\/(\d+)$/.exec(loser.name);
      const w = /^(\w+)\/([^/]+)\/([^/]+)\/rule\/(\d+)/.exec(winner.name);
      if (!r) continue;
      const c = {
        field: at ? `spec.rules[${at[1]}].matches[${at[2]}]` : "spec.rules",
        message: `same match as ${w ? `${w[1]} ${w[2]}/${w[3]} rule ${w[4]}` : winner.name}, which takes precedence (older, or first by name)`,
      };
      r.conflicts ??= [];
      if (!r.conflicts.some((x) => x.field === c.field && x.message === c.message)) r.conflicts.push(c);
    }
    const tp = trafficBySvc.get(`${ns}/${s.metadata.name}`);
    const gwKey = `gw:${p.plan.gateway}`;
    const svc: WaypointService = {
      key,
      gateway: p.plan.gateway,
      name: s.metadata.name,
      namespace: ns,
      hostname: ms.hostname,
      vips: ms.vips,
      ports: ms.ports.map((x) => ({
        port: x.port,
        protocol: protocolOf(x.appProtocol),
        ...(x.name ? { name: x.name } : {}),
      })),
      routes: sorted,
      clusters: [...clusters.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
      authz: [...(authzByTarget.get(gwKey) ?? []), ...(authzByTarget.get(`${ns}/${s.metadata.name}`) ?? [])],
      jwtRules: [...(jwtByTarget.get(gwKey) ?? []), ...(jwtByTarget.get(`${ns}/${s.metadata.name}`) ?? [])],
      ...(tp?.rateLimit ? { rateLimit: tp.rateLimit } : {}),
    };
    p.plan.services.push(svc);
  }

  // ---- route statuses and errors ----
  for (const [rt, results] of parentResults) if (results.length) statuses.push(routeStatus(rt, results, ctx));

  const waypoints = [...plans.values()].map((p) => ({
    ...p.plan,
    services: p.plan.services.sort((a, b) => (a.key < b.key ? -1 : 1)),
  }));
  return { waypoints, statuses, errors: ctx.errors, warnings: ctx.warnings };
}

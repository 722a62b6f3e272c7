// `ambit why`'s engine: what the data plane would do with a connection (and
// request) from a pod to a destination, computed from the state the
// controller and the proxies hold, with the data plane's own functions:
// planOutbound (the source ztunnel's plan), authorize (the destination
// ztunnel's L4 authorization) and explainRequest (the waypoint's routes and
// L7 policy). Pure: the same views give the same answer, golden-tested.
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";
import type { WaypointService } from "../../core/model/waypoint.js";
import { type ExplainResult, explainRequest } from "../../waypoint/explain.js";
import { type AuthzDecision, authorize } from "../../ztunnel/proxy/authz.js";
import { type OutboundPlan, planOutbound } from "../../ztunnel/proxy/outbound.js";
import { MeshState, workloadIdentity } from "../../ztunnel/state/mesh-state.js";

export interface ModelView {
  workloads: MeshWorkload[];
  services: MeshService[];
  policies: AuthzPolicy[];
}

/** What one node's ztunnel holds (its admin config dump), when it answered. */
export interface ZtunnelView {
  ready: boolean;
  /** IPs of the pods it captures. */
  enrolledIps: string[];
  /** Its own copy of the model (what it enforces); the controller's is used when absent. */
  state?: ModelView;
}

export interface WhyViews {
  /** The controller's model. */
  model: ModelView;
  /** By node name; a node absent here did not answer. */
  ztunnels: Record<string, ZtunnelView>;
  /** Waypoint services by waypoint `<ns>/<name>`, from the waypoints' config dumps (or the controller). */
  waypoints: Record<string, WaypointService[]>;
}

export interface WhyQuery {
  /** `NS/POD`. */
  src: string;
  /** A Service (`name`, `name.ns`, `ns/name`, its hostname), a VIP or a pod IP. */
  dst: string;
  port?: number;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
}

export type Verdict = "allowed" | "denied" | "refused" | "unknown";

export interface EndpointAnswer {
  pod: string;
  ip: string;
  port: number;
  node: string;
  identity: string;
  /** How the bytes reach it. */
  transport: "hbone" | "plaintext";
  /** The peer the destination ztunnel sees. */
  peer: { identity?: string; ip: string };
  /** Where L4 authorization runs (undefined: nothing authorizes, e.g. not enrolled). */
  enforcedBy?: string;
  authz?: AuthzDecision;
  /** STRICT mTLS refuses plain text before authorization. */
  strictRefused?: boolean;
  verdict: Verdict;
}

export interface WhyAnswer {
  query: WhyQuery & { port: number };
  source: {
    pod: string;
    ip: string;
    node: string;
    identity: string;
    enrolled: boolean;
    /** Whether the node's ztunnel captures it (undefined: that ztunnel did not answer). */
    captured?: boolean;
    ztunnel: string;
  };
  destination:
    | { kind: "service"; service: string; vip: string; port: number; waypoint?: string }
    | { kind: "workload"; pod: string; ip: string; port: number; waypoint?: string }
    | { kind: "outside"; ip: string; port: number };
  /** The source ztunnel's plan (omitted when the source is not captured). */
  plan?: {
    kind: OutboundPlan["kind"];
    reason?: string;
    tunnel?: string;
    peerIdentity?: string;
    viaWaypoint: boolean;
  };
  waypoint?: { gateway: string; identity?: string; ip?: string; known: boolean; request?: ExplainResult };
  endpoints: EndpointAnswer[];
  mtls: string;
  verdict: Verdict;
  /** One line: the answer. */
  summary: string;
  /** Notes on what could not be checked, and why. */
  notes: string[];
}

export class WhyError extends Error {
  readonly code = "WHY_INPUT";
}

function stateOf(v: ModelView): MeshState {
  const s = new MeshState();
  s.applyAddresses([...v.services, ...v.workloads]);
  s.applyPolicies(v.policies);
  return s;
}

const podKey = (w: MeshWorkload) => `${w.namespace}/${w.name}`;

/** The destination as an IP: a VIP or pod IP as given, else the Service the name means. */
function resolveDst(model: ModelView, dst: string, srcNs: string): { ip: string; service?: MeshService } {
  if (/^[0-9.]+$/.test(dst) || dst.includes(":")) return { ip: dst };
  let ns = srcNs;
  let name = dst;
  if (dst.includes("/")) [ns, name] = dst.split("/", 2) as [string, string];
  else if (dst.includes(".")) {
    const parts = dst.split(".");
    name = parts[0] as string;
    ns = parts[1] === "svc" ? srcNs : (parts[1] as string);
  }
  const s = model.services.find((x) => x.namespace === ns && (x.name === name || x.hostname === dst));
  if (!s)
    throw new WhyError(`no Service '${name}' in namespace '${ns}' (give a Service name, a VIP or a pod IP)`);
  const vip = s.vips[0];
  if (!vip) throw new WhyError(`Service ${ns}/${name} is headless: give a pod IP`);
  return { ip: vip, service: s };
}

export function explainConnection(views: WhyViews, q: WhyQuery): WhyAnswer {
  const [srcNs, srcName] = q.src.split("/", 2);
  if (!srcNs || !srcName) throw new WhyError(`source '${q.src}' must be NS/POD`);
  const src = views.model.workloads.find((w) => w.namespace === srcNs && w.name === srcName);
  if (!src) throw new WhyError(`no pod ${q.src} in the controller's model`);
  const srcIp = src.ips[0] ?? "";
  const srcZt = views.ztunnels[src.node];
  const notes: string[] = [];
  const resolved = resolveDst(views.model, q.dst, srcNs);

  // The source ztunnel plans with its own copy of the model; the controller's when it did not answer.
  const srcState = stateOf(srcZt?.state ?? views.model);
  if (!srcZt)
    notes.push(`ztunnel-${src.node} did not answer: its plan is computed from the controller's model`);
  const hit = srcState.lookup(resolved.ip);
  let port = q.port;
  if (port === undefined) {
    const ports = hit?.kind === "service" ? hit.service.ports : [];
    if (ports.length !== 1)
      throw new WhyError(
        `give a port: DST:PORT (${ports.map((p) => p.port).join(", ") || "no Service ports known"})`,
      );
    port = (ports[0] as { port: number }).port;
  }
  const destination: WhyAnswer["destination"] =
    hit?.kind === "service"
      ? {
          kind: "service",
          service: hit.service.key,
          vip: resolved.ip,
          port,
          ...(hit.service.waypoint ? { waypoint: gatewayName(srcState, hit.service) } : {}),
        }
      : hit?.kind === "workload"
        ? {
            kind: "workload",
            pod: podKey(hit.workload),
            ip: resolved.ip,
            port,
            ...(hit.workload.waypoint ? { waypoint: gatewayName(srcState, hit.workload) } : {}),
          }
        : { kind: "outside", ip: resolved.ip, port };

  const enrolled = src.tunnel === "hbone";
  const captured = srcZt ? srcZt.enrolledIps.includes(srcIp) : undefined;
  const source: WhyAnswer["source"] = {
    pod: q.src,
    ip: srcIp,
    node: src.node,
    identity: workloadIdentity(src),
    enrolled,
    ...(captured !== undefined ? { captured } : {}),
    ztunnel: `ztunnel-${src.node}`,
  };
  const answer: WhyAnswer = {
    query: { ...q, port },
    source,
    destination,
    endpoints: [],
    mtls: "",
    verdict: "unknown",
    summary: "",
    notes,
  };
  if (enrolled && captured === false)
    notes.push(
      `${q.src} is enrolled but ztunnel-${src.node} does not capture it (yet): its traffic leaves the pod uncaptured, as plain text`,
    );

  if (!enrolled || captured === false) {
    // No capture: the connection leaves the pod as addressed; only the destination's ztunnel may see it (15006).
    const targets =
      hit?.kind === "service"
        ? candidates(stateOf(views.model), hit.service, port)
        : hit?.kind === "workload"
          ? [{ workload: hit.workload, ip: resolved.ip, targetPort: port }]
          : [];
    if (hit?.kind === "service")
      notes.push(
        "the source is not captured: the service VIP is resolved outside the mesh (kube-proxy), not by ztunnel",
      );
    for (const t of targets) answer.endpoints.push(plaintextInbound(views, t, srcIp));
    answer.mtls = "none: the source is not captured, so the connection is plain text";
    return finish(answer);
  }

  const plan = planOutbound(srcState, { ip: resolved.ip, port }, src);
  answer.plan = {
    kind: plan.kind,
    ...("reason" in plan ? { reason: plan.reason } : {}),
    ...(plan.kind === "hbone"
      ? { tunnel: `${plan.tunnel.ip}:${plan.tunnel.port}`, peerIdentity: plan.peerIdentity }
      : {}),
    viaWaypoint: plan.kind === "hbone" && plan.viaWaypoint,
  };
  if (plan.kind === "refuse") {
    answer.mtls = "none: no connection is made";
    return finish(answer);
  }
  if (plan.kind === "passthrough") {
    answer.mtls = "none: plain TCP (the destination is not in the mesh or not enrolled)";
    if (plan.workload)
      answer.endpoints.push({
        pod: podKey(plan.workload),
        ip: plan.dst.ip,
        port: plan.dst.port,
        node: plan.workload.node,
        identity: workloadIdentity(plan.workload),
        transport: "plaintext",
        peer: { ip: srcIp },
        verdict: "allowed",
      });
    return finish(answer);
  }
  answer.mtls = `mTLS: HBONE (TLS 1.3) from ${source.identity}`;
  if (!plan.viaWaypoint) {
    // Every healthy endpoint the round robin can pick.
    const targets =
      plan.service && hit?.kind === "service"
        ? candidates(srcState, plan.service, port)
        : plan.workload
          ? [{ workload: plan.workload, ip: resolved.ip, targetPort: port }]
          : [];
    for (const t of targets)
      answer.endpoints.push(hboneInbound(views, t, { identity: source.identity, ip: srcIp }));
    return finish(answer);
  }

  // Through a waypoint: its routes and L7 policy, then its own HBONE to the endpoint.
  const gateway = destination.kind !== "outside" ? (destination.waypoint ?? "?") : "?";
  const wpIdentity = plan.peerIdentity;
  const wpIp = plan.tunnel.ip;
  const svcs = views.waypoints[gateway];
  const wsvc = svcs?.find((s) => (plan.service ? s.key === plan.service.key : s.vips.includes(resolved.ip)));
  answer.waypoint = { gateway, identity: wpIdentity, ip: wpIp, known: wsvc !== undefined };
  if (!wsvc) {
    notes.push(
      `waypoint ${gateway} did not answer or holds no configuration for this destination: its routes and L7 policy are not checked`,
    );
    return finish(answer);
  }
  const request = explainRequest(wsvc, {
    method: q.method ?? "GET",
    url: q.path ?? "/",
    port,
    ...(q.headers ? { headers: q.headers } : {}),
    sourcePrincipal: source.identity,
    sourceIp: srcIp,
  });
  answer.waypoint.request = request;
  answer.mtls = `mTLS: HBONE from ${source.identity} to the waypoint (${wpIdentity}), HBONE again from the waypoint to the endpoint`;
  if (request.outcome !== "routed") return finish(answer);
  const dstState = stateOf(views.model);
  for (const b of request.backends) {
    const cluster = wsvc.clusters.find((c) => c.name === b.cluster);
    for (const e of cluster?.endpoints ?? []) {
      const w = dstState.workloadByIp(e.ip);
      if (!w) continue;
      answer.endpoints.push(
        hboneInbound(
          views,
          { workload: w, ip: e.ip, targetPort: e.port },
          { identity: wpIdentity, ip: wpIp },
        ),
      );
    }
  }
  return finish(answer);
}

function gatewayName(state: MeshState, x: MeshService | MeshWorkload): string {
  const g = x.waypoint;
  if (!g) return "";
  if (g.hostname) return `${g.hostname.namespace}/${g.hostname.hostname.split(".")[0]}`;
  const hit = g.address ? state.lookup(g.address) : undefined;
  if (hit?.kind === "service") return `${hit.service.namespace}/${hit.service.name}`;
  if (hit?.kind === "workload") return `${hit.workload.namespace}/${hit.workload.canonicalName}`;
  return g.address ?? "";
}

interface Target {
  workload: MeshWorkload;
  ip: string;
  targetPort: number;
}

/** Every endpoint pickEndpoint can return, in its round-robin order. */
function candidates(state: MeshState, svc: MeshService, port: number): Target[] {
  const out = new Map<string, Target>();
  const n = state.endpointsOf(svc).length;
  for (let i = 0; i < n; i++) {
    const e = state.pickEndpoint(svc, port);
    if (e && !out.has(e.workload.uid)) out.set(e.workload.uid, e);
  }
  return [...out.values()].sort((a, b) => (a.workload.uid < b.workload.uid ? -1 : 1));
}

/** The destination ztunnel's state (what it enforces), the controller's when it did not answer. */
function dstStateFor(views: WhyViews, node: string): MeshState {
  return stateOf(views.ztunnels[node]?.state ?? views.model);
}

function hboneInbound(views: WhyViews, t: Target, peer: { identity: string; ip: string }): EndpointAnswer {
  const state = dstStateFor(views, t.workload.node);
  const w = state.workload(t.workload.uid) ?? t.workload;
  const base = {
    pod: podKey(w),
    ip: t.ip,
    port: t.targetPort,
    node: w.node,
    identity: workloadIdentity(w),
    transport: "hbone" as const,
    peer,
  };
  if (w.tunnel !== "hbone") return { ...base, verdict: "refused" };
  const authz = authorize(
    { srcIdentity: peer.identity, srcIp: peer.ip, dstIp: t.ip, dstPort: t.targetPort },
    w,
    state.policiesFor(w),
  );
  return { ...base, enforcedBy: `ztunnel-${w.node}`, authz, verdict: authz.allow ? "allowed" : "denied" };
}

function plaintextInbound(views: WhyViews, t: Target, srcIp: string): EndpointAnswer {
  const state = dstStateFor(views, t.workload.node);
  const w = state.workload(t.workload.uid) ?? t.workload;
  const base = {
    pod: podKey(w),
    ip: t.ip,
    port: t.targetPort,
    node: w.node,
    identity: workloadIdentity(w),
    transport: "plaintext" as const,
    peer: { ip: srcIp },
  };
  // Not enrolled: nothing stands between the two pods.
  if (w.tunnel !== "hbone") return { ...base, verdict: "allowed" };
  if (w.mtlsMode === "strict")
    return { ...base, enforcedBy: `ztunnel-${w.node}`, strictRefused: true, verdict: "denied" };
  const authz = authorize({ srcIp, dstIp: t.ip, dstPort: t.targetPort }, w, state.policiesFor(w));
  return { ...base, enforcedBy: `ztunnel-${w.node}`, authz, verdict: authz.allow ? "allowed" : "denied" };
}

function finish(a: WhyAnswer): WhyAnswer {
  const to =
    a.destination.kind === "service"
      ? a.destination.service
      : a.destination.kind === "workload"
        ? a.destination.pod
        : a.destination.ip;
  const target = `${a.query.src} → ${to}:${a.query.port}`;
  if (a.plan?.kind === "refuse") {
    a.verdict = "refused";
    a.summary = `${target}: refused by ${a.source.ztunnel} (${a.plan.reason})`;
    return a;
  }
  const req = a.waypoint?.request;
  if (req && req.outcome !== "routed") {
    a.verdict = req.outcome === "denied" ? "denied" : "allowed";
    const what =
      req.outcome === "denied"
        ? `denied by waypoint ${a.waypoint?.gateway} with ${req.status} (${req.reason})`
        : req.outcome === "no-route"
          ? `answered 404 by waypoint ${a.waypoint?.gateway}: no route matches`
          : req.outcome === "redirect"
            ? `redirected (${req.status}) by route ${req.route}`
            : `fault injected by route ${req.route}${req.abort ? ` (abort ${req.abort.httpStatus ?? `grpc ${req.abort.grpcStatus}`} for ${req.abort.percent}%)` : ""}${req.delay ? ` (delay ${req.delay.fixedDelayMs} ms for ${req.delay.percent}%)` : ""}`;
    a.summary = `${target}: ${what}`;
    return a;
  }
  if (a.plan?.kind === "passthrough") {
    a.verdict = "allowed";
    a.summary = `${target}: passed through as plain TCP (${a.plan.reason})`;
    return a;
  }
  if (a.endpoints.length === 0) {
    a.verdict = a.waypoint && !a.waypoint.known ? "unknown" : "refused";
    a.summary =
      a.verdict === "unknown"
        ? `${target}: through waypoint ${a.waypoint?.gateway}, whose configuration is not known`
        : `${target}: no endpoint to reach`;
    return a;
  }
  const verdicts = new Set(a.endpoints.map((e) => e.verdict));
  a.verdict = verdicts.size === 1 ? (a.endpoints[0] as EndpointAnswer).verdict : "unknown";
  const one = a.endpoints[0] as EndpointAnswer;
  const why = (e: EndpointAnswer) =>
    e.strictRefused
      ? "STRICT mTLS refuses plain text"
      : e.authz
        ? e.authz.policy
          ? `${e.authz.allow ? "ALLOW" : "DENY"} policy ${e.authz.policy} rule ${e.authz.rule}`
          : e.authz.reason === "no_allow_policies"
            ? "no ALLOW policy applies (allowed by default)"
            : "ALLOW policies apply and none matches"
        : "not enrolled: nothing checks it";
  a.summary =
    verdicts.size === 1
      ? `${target}: ${a.verdict}${a.endpoints.length > 1 ? (one.enforcedBy ? " by each endpoint's ztunnel" : "") : one.enforcedBy ? ` by ${one.enforcedBy}` : ""} (${why(one)})${a.endpoints.length > 1 ? ` on all ${a.endpoints.length} endpoints` : ""}`
      : `${target}: depends on the endpoint: ${a.endpoints.map((e) => `${e.pod} ${e.verdict} (${why(e)})`).join("; ")}`;
  if (req?.outcome === "routed") a.summary += `; routed by ${req.route}`;
  return a;
}

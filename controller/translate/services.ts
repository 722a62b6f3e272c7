// Services → MeshService: VIPs, TCP ports with their protocol, waypoint.
import type { AppProtocol, MeshService, ServicePort } from "../../core/model/types.js";
import type { Service, ServicePortSpec } from "../provider/objects.js";
import type { TranslateContext } from "./context.js";
import { serviceWaypoint } from "./use-waypoint.js";

/**
 * The protocol of a Service port: `appProtocol` first, else the port name's
 * prefix before "-" (Istio's convention: http, http2, h2c, grpc...), else tcp.
 */
export function appProtocolOf(p: ServicePortSpec): AppProtocol {
  const fromName = (v: string): AppProtocol | undefined => {
    switch (v.toLowerCase()) {
      case "http":
      case "kubernetes.io/ws":
        return "http";
      case "http2":
      case "h2c":
      case "kubernetes.io/h2c":
        return "http2";
      case "grpc":
      case "grpc-web":
        return "grpc";
      default:
        return undefined;
    }
  };
  if (p.appProtocol) return fromName(p.appProtocol) ?? "tcp";
  if (p.name) return fromName(p.name) ?? fromName(p.name.split("-")[0]!) ?? "tcp";
  return "tcp";
}

/** The target port as a number, or the container port name to resolve per pod. */
export function targetPortOf(p: ServicePortSpec): number | string {
  const t = p.targetPort;
  if (t === undefined || t === "" || t === 0) return p.port;
  if (typeof t === "string" && /^[0-9]+$/.test(t)) return Number(t);
  return t;
}

export function serviceVips(s: Service): string[] {
  const ips = s.spec.clusterIPs?.length ? s.spec.clusterIPs : s.spec.clusterIP ? [s.spec.clusterIP] : [];
  return ips.filter((ip) => ip !== "" && ip !== "None");
}

/** Ports the mesh carries: TCP only (ztunnel proxies TCP; UDP/SCTP pass by untouched). */
export function meshPorts(s: Service): ServicePortSpec[] {
  return (s.spec.ports ?? []).filter((p) => (p.protocol ?? "TCP") === "TCP");
}

export function translateService(ctx: TranslateContext, s: Service): MeshService | undefined {
  if (s.spec.type === "ExternalName") return undefined; // a DNS alias: nothing to proxy
  const ns = s.metadata.namespace ?? "default";
  const hostname = ctx.serviceHostname(s.metadata.name, ns);
  const ports: ServicePort[] = meshPorts(s).map((p) => {
    const target = targetPortOf(p);
    const out: ServicePort = {
      port: p.port,
      targetPort: typeof target === "number" ? target : 0,
      appProtocol: appProtocolOf(p),
    };
    if (p.name) out.name = p.name;
    return out;
  });
  const svc: MeshService = {
    key: `${ns}/${hostname}`,
    name: s.metadata.name,
    namespace: ns,
    hostname,
    vips: serviceVips(s),
    ports,
  };
  if (ctx.opts.network) svc.network = ctx.opts.network;
  const waypoint = serviceWaypoint(ctx, s);
  if (waypoint) svc.waypoint = waypoint;
  return svc;
}

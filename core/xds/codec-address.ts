// The edge between the model (MeshWorkload, MeshService) and the wire
// (istio.workload.Address). Pure. Names resources as istiod does so that
// Istio's ztunnel and ambit's read the same thing.
import { create } from "@bufbuild/protobuf";
import { ObjectError } from "../errors/errors.js";
import {
  type Address,
  AddressSchema,
  GatewayAddressSchema,
  IPFamilies,
  type Port,
  PortListSchema,
  PortSchema,
  type Service,
  TunnelProtocol,
  AppProtocol as WireAppProtocol,
  type GatewayAddress as WireGatewayAddress,
  type Workload,
  WorkloadStatus,
  WorkloadType,
} from "../gen/workload_pb.js";
import type {
  AppProtocol,
  GatewayAddress,
  MeshService,
  MeshWorkload,
  ServicePort,
  WorkloadServicePort,
} from "../model/types.js";
import { ipFromBytes, ipToBytes } from "./ip-bytes.js";

export type DecodedAddress =
  | { kind: "workload"; workload: MeshWorkload }
  | { kind: "service"; service: MeshService };

/** istiod's workload uid: `<cluster>//v1/Pod/<ns>/<name>`. */
export function workloadUid(clusterId: string, namespace: string, name: string): string {
  return `${clusterId}//v1/Pod/${namespace}/${name}`;
}

/** The xDS resource name of an Address: the workload uid, or the Service key `<ns>/<hostname>`. */
export function addressResourceName(x: MeshWorkload | MeshService | DecodedAddress): string {
  if ("kind" in x) return x.kind === "workload" ? x.workload.uid : x.service.key;
  return "uid" in x ? x.uid : x.key;
}

/** Resource aliases as istiod sets them: `<network>/<ip>` for each workload IP or service VIP. */
export function addressAliases(x: MeshWorkload | MeshService): string[] {
  if ("uid" in x) return x.ips.map((ip) => `${x.network}/${ip}`);
  return x.vips.map((vip) => `${x.network ?? ""}/${vip}`);
}

type ObjectRef = { kind: string; namespace?: string; name?: string };

function reject(obj: ObjectRef, field: string, reason: string): never {
  throw new ObjectError("XDS_REJECTED", obj, field, reason);
}

function ipBytes(obj: ObjectRef, field: string, ip: string): Uint8Array {
  return ipToBytes(ip) ?? reject(obj, field, `"${ip}" is not an IP address`);
}

function ipText(obj: ObjectRef, field: string, b: Uint8Array): string {
  return ipFromBytes(b) ?? reject(obj, field, `${b.length} bytes, want 4 (IPv4) or 16 (IPv6)`);
}

function portNumber(obj: ObjectRef, field: string, n: number, allowZero: boolean): number {
  if (!Number.isInteger(n) || n > 65535 || n < (allowZero ? 0 : 1))
    reject(obj, field, `port ${n} out of range`);
  return n;
}

// ---- model → wire -------------------------------------------------------

function gatewayToProto(
  obj: ObjectRef,
  field: string,
  g: GatewayAddress,
  network: string,
): WireGatewayAddress {
  if (g.address !== undefined) {
    return create(GatewayAddressSchema, {
      destination: {
        case: "address",
        value: { network, address: ipBytes(obj, `${field}.address`, g.address) },
      },
      hboneMtlsPort: g.hboneMtlsPort,
    });
  }
  if (g.hostname !== undefined) {
    return create(GatewayAddressSchema, {
      destination: {
        case: "hostname",
        value: { namespace: g.hostname.namespace, hostname: g.hostname.hostname },
      },
      hboneMtlsPort: g.hboneMtlsPort,
    });
  }
  return reject(obj, field, "neither address nor hostname set");
}

const appProtocolToWire: Record<AppProtocol, WireAppProtocol> = {
  // istiod leaves app_protocol unset for plain TCP ports.
  tcp: WireAppProtocol.UNKNOWN,
  http: WireAppProtocol.HTTP11,
  http2: WireAppProtocol.HTTP2,
  grpc: WireAppProtocol.GRPC,
};

const workloadTypeToWire: Record<MeshWorkload["workloadType"], WorkloadType> = {
  deployment: WorkloadType.DEPLOYMENT,
  cronjob: WorkloadType.CRONJOB,
  pod: WorkloadType.POD,
  job: WorkloadType.JOB,
};

function ipFamilies(vips: string[]): IPFamilies {
  const v4 = vips.some((v) => !v.includes(":"));
  const v6 = vips.some((v) => v.includes(":"));
  if (v4 && v6) return IPFamilies.DUAL;
  if (v6) return IPFamilies.IPV6_ONLY;
  if (v4) return IPFamilies.IPV4_ONLY;
  return IPFamilies.AUTOMATIC;
}

export function workloadToAddress(w: MeshWorkload): Address {
  const obj = { kind: "Workload", namespace: w.namespace, name: w.name };
  const services: Record<string, ReturnType<typeof create<typeof PortListSchema>>> = {};
  for (const [key, ports] of Object.entries(w.services)) {
    services[key] = create(PortListSchema, {
      ports: ports.map((p, i) =>
        create(PortSchema, {
          servicePort: portNumber(obj, `services["${key}"][${i}].servicePort`, p.servicePort, false),
          targetPort: portNumber(obj, `services["${key}"][${i}].targetPort`, p.targetPort, true),
        }),
      ),
    });
  }
  return create(AddressSchema, {
    type: {
      case: "workload",
      value: {
        uid: w.uid,
        name: w.name,
        namespace: w.namespace,
        addresses: w.ips.map((ip, i) => ipBytes(obj, `ips[${i}]`, ip)),
        network: w.network,
        tunnelProtocol: w.tunnel === "hbone" ? TunnelProtocol.HBONE : TunnelProtocol.NONE,
        trustDomain: w.trustDomain,
        serviceAccount: w.serviceAccount,
        ...(w.waypoint ? { waypoint: gatewayToProto(obj, "waypoint", w.waypoint, w.network) } : {}),
        node: w.node,
        canonicalName: w.canonicalName,
        canonicalRevision: w.canonicalRevision,
        workloadType: workloadTypeToWire[w.workloadType],
        workloadName: w.workloadName,
        services,
        authorizationPolicies: [...w.authorizationPolicies],
        status: w.healthy ? WorkloadStatus.HEALTHY : WorkloadStatus.UNHEALTHY,
        clusterId: w.clusterId,
      },
    },
  });
}

export function serviceToAddress(s: MeshService): Address {
  const obj = { kind: "Service", namespace: s.namespace, name: s.name };
  const network = s.network ?? "";
  return create(AddressSchema, {
    type: {
      case: "service",
      value: {
        name: s.name,
        namespace: s.namespace,
        hostname: s.hostname,
        addresses: s.vips.map((vip, i) => ({ network, address: ipBytes(obj, `vips[${i}]`, vip) })),
        ports: s.ports.map((p, i) =>
          create(PortSchema, {
            servicePort: portNumber(obj, `ports[${i}].port`, p.port, false),
            targetPort: portNumber(obj, `ports[${i}].targetPort`, p.targetPort, true),
            appProtocol: appProtocolToWire[p.appProtocol],
          }),
        ),
        ...(s.waypoint ? { waypoint: gatewayToProto(obj, "waypoint", s.waypoint, network) } : {}),
        ipFamilies: ipFamilies(s.vips),
      },
    },
  });
}

// ---- wire → model -------------------------------------------------------

function gatewayFromProto(obj: ObjectRef, field: string, g: WireGatewayAddress): GatewayAddress {
  const port = portNumber(obj, `${field}.hbone_mtls_port`, g.hboneMtlsPort, false);
  switch (g.destination.case) {
    case "address":
      return {
        address: ipText(obj, `${field}.address.address`, g.destination.value.address),
        hboneMtlsPort: port,
      };
    case "hostname": {
      const h = g.destination.value;
      if (!h.hostname) reject(obj, `${field}.hostname.hostname`, "empty");
      return { hostname: { namespace: h.namespace, hostname: h.hostname }, hboneMtlsPort: port };
    }
    default:
      return reject(obj, `${field}.destination`, "neither address nor hostname set");
  }
}

function appProtocolFromWire(obj: ObjectRef, field: string, p: WireAppProtocol): AppProtocol {
  switch (p) {
    case WireAppProtocol.HTTP11:
      return "http";
    case WireAppProtocol.HTTP2:
      return "http2";
    case WireAppProtocol.GRPC:
      return "grpc";
    case WireAppProtocol.UNKNOWN:
    case WireAppProtocol.TCP:
    case WireAppProtocol.TLS:
      return "tcp";
    default:
      return reject(obj, field, `unknown app protocol ${p}`);
  }
}

function workloadFromProto(w: Workload): MeshWorkload {
  const obj = { kind: "Workload", namespace: w.namespace, name: w.name || w.uid };
  if (!w.uid) reject(obj, "uid", "empty");
  if (!w.name) reject(obj, "name", "empty");
  if (!w.namespace) reject(obj, "namespace", "empty");
  let tunnel: MeshWorkload["tunnel"];
  if (w.tunnelProtocol === TunnelProtocol.HBONE) tunnel = "hbone";
  else if (w.tunnelProtocol === TunnelProtocol.NONE) tunnel = "none";
  else
    reject(
      obj,
      "tunnel_protocol",
      `unsupported tunnel protocol ${TunnelProtocol[w.tunnelProtocol] ?? w.tunnelProtocol}`,
    );
  const workloadType = (Object.keys(workloadTypeToWire) as MeshWorkload["workloadType"][]).find(
    (k) => workloadTypeToWire[k] === w.workloadType,
  );
  if (workloadType === undefined) reject(obj, "workload_type", `unknown workload type ${w.workloadType}`);
  if (w.status !== WorkloadStatus.HEALTHY && w.status !== WorkloadStatus.UNHEALTHY) {
    reject(obj, "status", `unknown status ${w.status}`);
  }
  const services: Record<string, WorkloadServicePort[]> = {};
  for (const [key, list] of Object.entries(w.services)) {
    services[key] = list.ports.map((p: Port, i) => ({
      servicePort: portNumber(obj, `services["${key}"].ports[${i}].service_port`, p.servicePort, false),
      targetPort: portNumber(obj, `services["${key}"].ports[${i}].target_port`, p.targetPort, true),
    }));
  }
  const out: MeshWorkload = {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    ips: w.addresses.map((b, i) => ipText(obj, `addresses[${i}]`, b)),
    node: w.node,
    serviceAccount: w.serviceAccount,
    trustDomain: w.trustDomain,
    tunnel,
    services,
    healthy: w.status === WorkloadStatus.HEALTHY,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    workloadName: w.workloadName,
    workloadType,
    clusterId: w.clusterId,
    network: w.network,
    authorizationPolicies: [...w.authorizationPolicies],
  };
  if (w.waypoint) out.waypoint = gatewayFromProto(obj, "waypoint", w.waypoint);
  return out;
}

function serviceFromProto(s: Service): MeshService {
  const obj = { kind: "Service", namespace: s.namespace, name: s.name || s.hostname };
  if (!s.namespace) reject(obj, "namespace", "empty");
  if (!s.hostname) reject(obj, "hostname", "empty");
  const ports: ServicePort[] = s.ports.map((p, i) => ({
    port: portNumber(obj, `ports[${i}].service_port`, p.servicePort, false),
    targetPort: portNumber(obj, `ports[${i}].target_port`, p.targetPort, true),
    appProtocol: appProtocolFromWire(obj, `ports[${i}].app_protocol`, p.appProtocol),
  }));
  const out: MeshService = {
    key: `${s.namespace}/${s.hostname}`,
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.addresses.map((a, i) => ipText(obj, `addresses[${i}].address`, a.address)),
    ports,
  };
  const network = s.addresses.find((a) => a.network !== "")?.network;
  if (network !== undefined) out.network = network;
  if (s.waypoint) out.waypoint = gatewayFromProto(obj, "waypoint", s.waypoint);
  return out;
}

/** Wire → model. Throws ObjectError XDS_REJECTED naming the field when the resource is invalid. */
export function addressFromProto(a: Address): DecodedAddress {
  switch (a.type.case) {
    case "workload":
      return { kind: "workload", workload: workloadFromProto(a.type.value) };
    case "service":
      return { kind: "service", service: serviceFromProto(a.type.value) };
    default:
      return reject({ kind: "Address" }, "type", "neither workload nor service set");
  }
}

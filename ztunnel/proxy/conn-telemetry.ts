// Per-connection telemetry of the ztunnel proxies: Istio's istio_tcp_*
// counters (labels from the model, never IPs) and one access-log line per
// connection at close. Computed once per connection; nothing per chunk.
import type { MeshService, MeshWorkload } from "../../core/model/types.js";
import { logger } from "../../core/telemetry/logger.js";
import { counter, type IstioLabels, type TcpTally, tcpTally } from "../../core/telemetry/metrics.js";
import { workloadIdentity } from "../state/mesh-state.js";

export const accessLog = logger("ztunnel.access");

export const connectFailures = counter(
  "ambit_ztunnel_connect_failures_total",
  "Connections the ztunnel could not carry to their destination, by direction and reason",
  ["direction", "reason"],
);
export const authzDenials = counter(
  "ambit_authz_denials_total",
  "Connections denied by L4 authorization, by reason",
  ["reason", "direction"],
);
export const inboundRefused = counter(
  "ambit_inbound_refused_total",
  "Inbound connections refused before authorization (NOT_LOCAL, STRICT_MTLS, ...)",
  ["reason"],
);

export type Direction = "outbound" | "inbound" | "passthrough" | "plaintext_inbound";

export interface ConnParty {
  ip: string;
  port?: number;
  identity?: string;
  workload?: MeshWorkload;
}

function namespaceOfIdentity(id: string | undefined): string {
  if (!id) return "unknown";
  const m = /\/ns\/([^/]+)\//.exec(id);
  return m ? (m[1] as string) : "unknown";
}

export function istioLabelsFor(
  reporter: "source" | "destination",
  src: ConnParty,
  dst: ConnParty,
  service: MeshService | undefined,
  mtls: boolean,
): IstioLabels {
  return {
    reporter,
    source_workload: src.workload?.workloadName ?? "unknown",
    source_workload_namespace: src.workload?.namespace ?? namespaceOfIdentity(src.identity),
    source_principal: src.identity ?? "unknown",
    destination_service: service?.hostname ?? "unknown",
    destination_workload: dst.workload?.workloadName ?? "unknown",
    destination_workload_namespace: dst.workload?.namespace ?? namespaceOfIdentity(dst.identity),
    destination_principal:
      dst.identity ??
      (dst.workload && dst.workload.tunnel === "hbone" ? workloadIdentity(dst.workload) : "unknown"),
    connection_security_policy: mtls ? "mutual_tls" : "none",
  };
}

export interface ConnRecord {
  direction: Direction;
  src: ConnParty;
  dst: ConnParty;
  /** The original destination the application asked for (a VIP or pod IP). */
  origDst?: { ip: string; port: number };
  service?: MeshService;
  /** The HBONE hop, when tunnelled: ip:port and whether through a waypoint. */
  tunnel?: { ip: string; port: number; waypoint: boolean };
  labels: IstioLabels;
  start: number;
  /** The istio_tcp_* tally of `labels`, found once per connection (connOpened). */
  tally?: TcpTally;
}

/** Counts the connection as opened (the upstream side is established). */
export function connOpened(rec: ConnRecord): void {
  rec.tally ??= tcpTally(rec.labels);
  // The tally keeps an equal label set for all the connections of this edge:
  // share it rather than hold one per connection for the connection's life.
  rec.labels = rec.tally.labels;
  rec.tally.opened++;
}

/**
 * Counts bytes and the close, and writes the access-log line. `sent` is what
 * went from the source toward the destination, `received` the other way.
 */
export function connClosed(
  rec: ConnRecord,
  sent: number,
  received: number,
  reason: string,
  detail?: string,
): void {
  rec.tally ??= tcpTally(rec.labels);
  rec.tally.closed++;
  rec.tally.sent += sent;
  rec.tally.received += received;
  if (!accessLog.isLevelEnabled("info")) return;
  accessLog.info(
    {
      direction: rec.direction,
      src: { addr: addr(rec.src), identity: rec.src.identity, workload: name(rec.src.workload) },
      dst: {
        addr: addr(rec.dst),
        identity: rec.dst.identity,
        workload: name(rec.dst.workload),
        service: rec.service?.hostname,
      },
      ...(rec.origDst ? { origDst: `${rec.origDst.ip}:${rec.origDst.port}` } : {}),
      ...(rec.tunnel ? { hbone: `${rec.tunnel.ip}:${rec.tunnel.port}`, waypoint: rec.tunnel.waypoint } : {}),
      bytesSent: sent,
      bytesReceived: received,
      durationMs: Date.now() - rec.start,
      reason,
      ...(detail ? { detail } : {}),
    },
    "connection complete",
  );
}

/** A connection refused or failed before it was established: log line, no istio_tcp_* counts. */
export function connRefused(
  rec: Omit<ConnRecord, "labels">,
  reason: string,
  extra: Record<string, unknown> = {},
): void {
  if (!accessLog.isLevelEnabled("info")) return;
  accessLog.info(
    {
      direction: rec.direction,
      src: { addr: addr(rec.src), identity: rec.src.identity, workload: name(rec.src.workload) },
      dst: {
        addr: addr(rec.dst),
        identity: rec.dst.identity,
        workload: name(rec.dst.workload),
        service: rec.service?.hostname,
      },
      ...(rec.origDst ? { origDst: `${rec.origDst.ip}:${rec.origDst.port}` } : {}),
      durationMs: Date.now() - rec.start,
      reason,
      ...extra,
    },
    "connection refused",
  );
}

function addr(p: ConnParty): string {
  return p.port !== undefined ? `${p.ip}:${p.port}` : p.ip;
}

function name(w: MeshWorkload | undefined): string | undefined {
  return w ? `${w.namespace}/${w.name}` : undefined;
}

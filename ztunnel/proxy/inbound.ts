// Inbound over HBONE (15008): the HboneServer's handler. The :authority must
// name a pod of this node (and, in in-pod mode, the pod whose namespace the
// listener lives in); L4 authorization with the peer's SPIFFE id; then a
// connection to the application, 200, and splice. Refusals answer with an
// HTTP status on the stream (the HBONE session lives on for other streams).
import type { ServerHttp2Stream } from "node:http2";
import http2 from "node:http2";
import net from "node:net";
import { bridge } from "../../core/hbone/bridge.js";
import type { HboneHandler, HboneStreamInfo } from "../../core/hbone/server.js";
import type { IpPort } from "../../core/hbone/types.js";
import type { MeshWorkload } from "../../core/model/types.js";
import { tcpDenied } from "../../core/telemetry/metrics.js";
import { type MeshState, workloadIdentity } from "../state/mesh-state.js";
import { authorize } from "./authz.js";
import {
  authzDenials,
  type ConnParty,
  type ConnRecord,
  connClosed,
  connectFailures,
  connOpened,
  connRefused,
  inboundRefused,
  istioLabelsFor,
} from "./conn-telemetry.js";
import { ConnectionDrain, type DrainSlot } from "./drain.js";
import { memoryAdmission } from "./memory-pressure.js";

/** Connects to the application inside the destination pod; the capture layer keeps the source IP where it can. */
export type ConnectLocal = (dst: IpPort, opts: { sourceIp: string }) => net.Socket;

export const defaultConnectLocal: ConnectLocal = (dst) =>
  net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true, noDelay: true });

export interface InboundOptions {
  state: MeshState;
  /** This ztunnel's node: only its pods are served. */
  node: string;
  connectLocal?: ConnectLocal;
  connectTimeoutMs?: number;
}

/** Finds the local destination pod of an inbound connection, or why it is not ours. */
export function localDestination(
  state: MeshState,
  node: string,
  dstIp: string,
  listenerPodUid: string | undefined,
): { ok: true; workload: MeshWorkload } | { ok: false; reason: "NOT_LOCAL" } {
  const w = state.workloadByIp(dstIp);
  if (!w || w.node !== node) return { ok: false, reason: "NOT_LOCAL" };
  if (listenerPodUid !== undefined && w.uid !== listenerPodUid) return { ok: false, reason: "NOT_LOCAL" };
  return { ok: true, workload: w };
}

/** The source as the model knows it: the workload at the peer's IP, when its identity agrees. */
export function sourceParty(
  state: MeshState,
  ip: string,
  port: number | undefined,
  identity: string | undefined,
): ConnParty {
  const w = state.workloadByIp(ip);
  const agrees = w && (identity === undefined ? w.tunnel !== "hbone" : workloadIdentity(w) === identity);
  return { ip, port, identity, workload: agrees ? w : undefined };
}

export class InboundProxy {
  readonly handler: HboneHandler;
  private readonly connectLocal: ConnectLocal;
  private readonly connectTimeoutMs: number;
  private readonly drain = new ConnectionDrain();

  constructor(private readonly opts: InboundOptions) {
    this.connectLocal = opts.connectLocal ?? defaultConnectLocal;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.handler = (stream, info) => this.handle(stream, info);
  }

  /** Connections spliced to applications. */
  get activeConnections(): number {
    return this.drain.count;
  }

  /** Resolves once no connection is being set up or spliced (accounting included). */
  whenIdle(): Promise<void> {
    return this.drain.whenIdle();
  }

  /** Resets every spliced connection (after the caller's drain deadline). */
  abortAll(): void {
    this.drain.abortAll();
  }

  private handle(stream: ServerHttp2Stream, info: HboneStreamInfo): void {
    // A new stream on a pooled session is a new connection: refused under memory pressure (counted there).
    if (!memoryAdmission.admit("hbone_stream")) {
      respond(stream, 503);
      return;
    }
    const { state, node } = this.opts;
    const start = Date.now();
    const src = sourceParty(state, info.peerAddress, info.peerPort, info.peerIdentity);
    const local = localDestination(state, node, info.authority.ip, info.listener.podUid);
    const dst: ConnParty = { ip: info.authority.ip, port: info.authority.port };
    if (!local.ok) {
      inboundRefused.inc({ reason: local.reason });
      connRefused({ direction: "inbound", src, dst, start }, local.reason);
      respond(stream, 400);
      return;
    }
    const w = local.workload;
    dst.workload = w;
    dst.identity = workloadIdentity(w);
    const decision = authorize(
      {
        srcIdentity: info.peerIdentity,
        srcIp: info.peerAddress,
        dstIp: info.authority.ip,
        dstPort: info.authority.port,
      },
      w,
      state.policiesFor(w),
    );
    const service = state.servicesServedOn(w, info.authority.port)[0];
    if (!decision.allow) {
      authzDenials.inc({ reason: decision.reason, direction: "inbound" });
      tcpDenied.inc({ ...istioLabelsFor("destination", src, dst, service, true), reason: decision.reason });
      connRefused(
        { direction: "inbound", src, dst, start, ...(service ? { service } : {}) },
        "AUTHZ_DENIED",
        {
          authz: decision.reason,
          ...(decision.policy ? { policy: decision.policy, rule: decision.rule } : {}),
        },
      );
      respond(stream, 401);
      return;
    }
    const rec: ConnRecord = {
      direction: "inbound",
      src,
      dst,
      start,
      ...(service ? { service } : {}),
      labels: istioLabelsFor("destination", src, dst, service, true),
    };
    const slot = this.drain.begin();
    let app: net.Socket;
    try {
      app = this.connectLocal(info.authority, { sourceIp: info.peerAddress });
    } catch (err) {
      this.connectFailed(stream, rec, err as Error, slot);
      return;
    }
    app.on("error", ignore);
    const timer = setTimeout(() => app.destroy(new Error("connect timeout")), this.connectTimeoutMs);
    const onStreamGone = () => {
      // The caller reset before the application answered.
      clearTimeout(timer);
      app.destroy();
      slot.done();
    };
    stream.once("close", onStreamGone);
    const onFail = (err: Error) => {
      clearTimeout(timer);
      stream.off("close", onStreamGone);
      this.connectFailed(stream, rec, err, slot);
    };
    app.once("error", onFail);
    app.once("connect", () => {
      clearTimeout(timer);
      app.off("error", onFail);
      stream.off("close", onStreamGone);
      if (stream.closed || stream.destroyed) {
        app.destroy();
        slot.done();
        return;
      }
      stream.respond({ ":status": 200 });
      splice(app, stream, rec, slot);
    });
  }

  private connectFailed(
    stream: ServerHttp2Stream,
    rec: ConnRecord,
    err: Error & { code?: string },
    slot: DrainSlot,
  ): void {
    slot.done();
    const reason = err.message === "connect timeout" ? "timeout" : (err.code ?? "error");
    connectFailures.inc({ direction: "inbound", reason: reason === "timeout" ? "timeout" : "error" });
    connRefused(rec, "CONNECT_FAILED", { error: reason });
    respond(stream, 503);
  }
}

/**
 * Bridges an accepted connection. A function of its own so that what the
 * bridge's close callback keeps alive for the connection's life is just this
 * scope, not the set-up's (connect timer, listeners, authorization).
 */
function splice(app: net.Socket, stream: ServerHttp2Stream, rec: ConnRecord, slot: DrainSlot): void {
  connOpened(rec);
  // Source's view: bytes the app received were sent by the source.
  const b = bridge(app, stream, (end) => {
    connClosed(rec, app.bytesWritten, app.bytesRead, end.reason, end.detail);
    slot.done();
  });
  slot.opened(b);
}

function respond(stream: ServerHttp2Stream, status: number): void {
  if (stream.closed || stream.destroyed || stream.headersSent) return;
  try {
    stream.respond({ ":status": status }, { endStream: true });
  } catch {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }
}

function ignore(): void {}

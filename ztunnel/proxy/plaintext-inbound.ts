// Inbound plaintext (15006): a connection that reached an enrolled pod
// without HBONE, i.e. from outside the mesh. PeerAuthentication decides:
// STRICT refuses it; PERMISSIVE (the default) lets it through after L4
// authorization with no peer identity (so Istio's converted STRICT policy,
// a DENY on notPrincipals presence, refuses it too).
import type net from "node:net";
import { bridgeSockets } from "../../core/hbone/bridge.js";
import { type IpPort, normalizeIp } from "../../core/hbone/types.js";
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
import { type ConnectLocal, defaultConnectLocal, localDestination, sourceParty } from "./inbound.js";

export interface PlaintextInboundOptions {
  state: MeshState;
  node: string;
  connectLocal?: ConnectLocal;
  connectTimeoutMs?: number;
}

export interface PlaintextInboundContext {
  origDst: IpPort;
  /** In-pod mode: the pod whose namespace the listener lives in. */
  podUid?: string;
}

export class PlaintextInboundProxy {
  private readonly connectLocal: ConnectLocal;
  private readonly connectTimeoutMs: number;
  private readonly drain = new ConnectionDrain();

  constructor(private readonly opts: PlaintextInboundOptions) {
    this.connectLocal = opts.connectLocal ?? defaultConnectLocal;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  }

  get activeConnections(): number {
    return this.drain.count;
  }

  /** Resolves once no connection is being set up or spliced (accounting included). */
  whenIdle(): Promise<void> {
    return this.drain.whenIdle();
  }

  /** Aborts every spliced connection (after the caller's drain deadline). */
  abortAll(): void {
    this.drain.abortAll();
  }

  /** Takes over a captured plaintext connection. Never throws; refusals reset the socket. */
  handlePlaintextInbound(socket: net.Socket, ctx: PlaintextInboundContext): void {
    socket.allowHalfOpen = true;
    socket.on("error", ignore);
    const { state, node } = this.opts;
    const start = Date.now();
    const srcIp = normalizeIp(socket.remoteAddress);
    const src: ConnParty = sourceParty(state, srcIp, socket.remotePort, undefined);
    const dst: ConnParty = { ip: ctx.origDst.ip, port: ctx.origDst.port };
    const local = localDestination(state, node, ctx.origDst.ip, ctx.podUid);
    if (!local.ok) {
      inboundRefused.inc({ reason: local.reason });
      connRefused({ direction: "plaintext_inbound", src, dst, start }, local.reason);
      socket.resetAndDestroy();
      return;
    }
    const w = local.workload;
    dst.workload = w;
    dst.identity = workloadIdentity(w);
    if (w.mtlsMode === "strict") {
      inboundRefused.inc({ reason: "STRICT_MTLS" });
      connRefused({ direction: "plaintext_inbound", src, dst, start }, "STRICT_MTLS");
      socket.resetAndDestroy();
      return;
    }
    const decision = authorize(
      { srcIp, dstIp: ctx.origDst.ip, dstPort: ctx.origDst.port },
      w,
      state.policiesFor(w),
    );
    const service = state.servicesServedOn(w, ctx.origDst.port)[0];
    if (!decision.allow) {
      authzDenials.inc({ reason: decision.reason, direction: "plaintext_inbound" });
      tcpDenied.inc({ ...istioLabelsFor("destination", src, dst, service, false), reason: decision.reason });
      connRefused(
        { direction: "plaintext_inbound", src, dst, start, ...(service ? { service } : {}) },
        "AUTHZ_DENIED",
        {
          authz: decision.reason,
          ...(decision.policy ? { policy: decision.policy, rule: decision.rule } : {}),
        },
      );
      socket.resetAndDestroy();
      return;
    }
    const rec: ConnRecord = {
      direction: "plaintext_inbound",
      src,
      dst,
      start,
      ...(service ? { service } : {}),
      labels: istioLabelsFor("destination", src, dst, service, false),
    };
    const slot = this.drain.begin();
    let app: net.Socket;
    try {
      app = this.connectLocal(ctx.origDst, { sourceIp: srcIp });
    } catch (err) {
      this.failed(socket, rec, err as Error, slot);
      return;
    }
    const timer = setTimeout(() => app.destroy(new Error("connect timeout")), this.connectTimeoutMs);
    const onFail = (err: Error) => {
      clearTimeout(timer);
      this.failed(socket, rec, err, slot);
    };
    app.once("error", onFail);
    app.once("connect", () => {
      clearTimeout(timer);
      app.off("error", onFail);
      if (socket.destroyed) {
        app.destroy();
        slot.done();
        return;
      }
      connOpened(rec);
      const b = bridgeSockets(socket, app, (end) => {
        connClosed(rec, socket.bytesRead, socket.bytesWritten, end.reason, end.detail);
        slot.done();
      });
      slot.opened(b);
    });
  }

  private failed(socket: net.Socket, rec: ConnRecord, err: Error & { code?: string }, slot: DrainSlot): void {
    slot.done();
    connectFailures.inc({
      direction: "plaintext_inbound",
      reason: err.message === "connect timeout" ? "timeout" : "error",
    });
    connRefused(rec, "CONNECT_FAILED", { error: err.code ?? err.message });
    socket.resetAndDestroy();
  }
}

function ignore(): void {}

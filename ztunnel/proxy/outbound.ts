// Outbound (15001): a connection an enrolled pod opened, captured with its
// original destination. First a plan (plain data, from MeshState): tunnel
// over HBONE to the endpoint or waypoint, pass through untouched, or refuse.
// Then apply it: open the HBONE stream presenting the source's identity (or
// a plain TCP connection marked so capture does not loop) and splice.
import type { ClientHttp2Stream } from "node:http2";
import net from "node:net";
import type { Writable } from "node:stream";
import { peerBaggageFor } from "../../core/hbone/baggage.js";
import { type Bridge, bridge, bridgeSockets, resetStream } from "../../core/hbone/bridge.js";
import { type HboneClient, HboneConnectError } from "../../core/hbone/client.js";
import { formatAuthority, HBONE_PORT, type IpPort, normalizeIp } from "../../core/hbone/types.js";
import type { MeshService, MeshWorkload } from "../../core/model/types.js";
import { type MeshState, type PickOptions, workloadIdentity } from "../state/mesh-state.js";
import {
  type ConnRecord,
  connClosed,
  connectFailures,
  connOpened,
  connRefused,
  istioLabelsFor,
} from "./conn-telemetry.js";

export type OutboundPlan =
  | {
      kind: "hbone";
      /** Where the tunnel goes: the endpoint's or the waypoint's IP, port 15008. */
      tunnel: IpPort;
      /** Expected SPIFFE id of the tunnel's peer. */
      peerIdentity: string;
      /** :authority — the application destination (endpoint ip:targetPort, or the original VIP:port via a waypoint). */
      authority: string;
      viaWaypoint: boolean;
      service?: MeshService;
      /** The destination workload (the waypoint's when via a waypoint). */
      workload?: MeshWorkload;
    }
  | {
      kind: "passthrough";
      dst: IpPort;
      reason: "not_in_mesh" | "not_enrolled";
      service?: MeshService;
      workload?: MeshWorkload;
    }
  | {
      kind: "refuse";
      reason: "no_healthy_endpoint" | "waypoint_unresolved";
      service?: MeshService;
      workload?: MeshWorkload;
    };

/** Decides where a captured connection goes. Pure but for the round-robin cursor in MeshState (`peek` leaves it). */
export function planOutbound(
  state: MeshState,
  origDst: IpPort,
  source: MeshWorkload,
  opts: PickOptions = {},
): OutboundPlan {
  const hit = state.lookup(origDst.ip);
  if (!hit) return { kind: "passthrough", dst: origDst, reason: "not_in_mesh" };
  const authority = formatAuthority(origDst);
  if (hit.kind === "service") {
    const service = hit.service;
    if (service.waypoint) {
      const wp = state.resolveGateway(service.waypoint, opts);
      // The waypoint's own traffic to the service must not loop back into it.
      if (wp?.workload?.uid !== source.uid) {
        if (!wp?.identity) return { kind: "refuse", reason: "waypoint_unresolved", service };
        return {
          kind: "hbone",
          tunnel: { ip: wp.ip, port: wp.port },
          peerIdentity: wp.identity,
          authority,
          viaWaypoint: true,
          service,
          ...(wp.workload ? { workload: wp.workload } : {}),
        };
      }
    }
    const ep = state.pickEndpoint(service, origDst.port, opts);
    if (!ep) return { kind: "refuse", reason: "no_healthy_endpoint", service };
    if (ep.workload.tunnel !== "hbone") {
      return {
        kind: "passthrough",
        dst: { ip: ep.ip, port: ep.targetPort },
        reason: "not_enrolled",
        service,
        workload: ep.workload,
      };
    }
    return {
      kind: "hbone",
      tunnel: { ip: ep.ip, port: HBONE_PORT },
      peerIdentity: workloadIdentity(ep.workload),
      authority: formatAuthority({ ip: ep.ip, port: ep.targetPort }),
      viaWaypoint: false,
      service,
      workload: ep.workload,
    };
  }
  const w = hit.workload;
  if (w.waypoint) {
    const wp = state.resolveGateway(w.waypoint, opts);
    if (wp?.workload?.uid !== source.uid) {
      if (!wp?.identity) return { kind: "refuse", reason: "waypoint_unresolved", workload: w };
      return {
        kind: "hbone",
        tunnel: { ip: wp.ip, port: wp.port },
        peerIdentity: wp.identity,
        authority,
        viaWaypoint: true,
        ...(wp.workload ? { workload: wp.workload } : {}),
      };
    }
  }
  if (w.tunnel !== "hbone") return { kind: "passthrough", dst: origDst, reason: "not_enrolled", workload: w };
  return {
    kind: "hbone",
    tunnel: { ip: origDst.ip, port: HBONE_PORT },
    peerIdentity: workloadIdentity(w),
    authority,
    viaWaypoint: false,
    workload: w,
  };
}

export interface OutboundOptions {
  state: MeshState;
  hbone: HboneClient;
  /** Plain TCP to a destination outside the mesh; the capture layer injects one that marks the socket. */
  connectPlain?: (dst: IpPort) => net.Socket;
  /** For plain connections (HBONE has its own). */
  connectTimeoutMs?: number;
}

export interface OutboundContext {
  origDst: IpPort;
  source: MeshWorkload;
}

export class OutboundProxy {
  private readonly connectPlain: (dst: IpPort) => net.Socket;
  private readonly connectTimeoutMs: number;
  private readonly active = new Set<Bridge>();
  private readonly idleWaiters: (() => void)[] = [];
  private pending = 0;

  constructor(private readonly opts: OutboundOptions) {
    this.connectPlain =
      opts.connectPlain ??
      ((dst) => net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true, noDelay: true }));
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  }

  /** Connections being set up or spliced. */
  get activeConnections(): number {
    return this.active.size + this.pending;
  }

  /** Takes over a captured connection. Never throws; failures reset the socket, count and log. */
  handleOutbound(socket: net.Socket, ctx: OutboundContext): void {
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    socket.on("error", ignore);
    const srcIdentity = workloadIdentity(ctx.source);
    const srcIp = normalizeIp(socket.remoteAddress) || (ctx.source.ips[0] ?? "");
    const plan = planOutbound(this.opts.state, ctx.origDst, ctx.source);
    const base = {
      direction: (plan.kind === "passthrough" ? "passthrough" : "outbound") as "passthrough" | "outbound",
      src: { ip: srcIp, port: socket.remotePort, identity: srcIdentity, workload: ctx.source },
      origDst: ctx.origDst,
      start: Date.now(),
      ...(plan.service ? { service: plan.service } : {}),
    };
    if (plan.kind === "refuse") {
      connectFailures.inc({ direction: "outbound", reason: plan.reason });
      connRefused(
        { ...base, dst: { ip: ctx.origDst.ip, port: ctx.origDst.port, workload: plan.workload } },
        plan.reason,
      );
      socket.resetAndDestroy();
      return;
    }
    this.pending++;
    if (plan.kind === "hbone") this.tunnel(socket, plan, base, srcIdentity, srcIp);
    else this.passthrough(socket, plan, base);
  }

  /** Resolves once no connection is being set up or spliced (accounting included). */
  whenIdle(): Promise<void> {
    if (this.activeConnections === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Resolves when every connection has ended, or aborts what is left after graceMs. */
  async drain(graceMs: number): Promise<void> {
    if (this.activeConnections === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => this.idleWaiters.push(r)),
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const b of [...this.active]) b.abort();
  }

  private settled(b?: Bridge): void {
    if (b) this.active.delete(b);
    if (this.activeConnections === 0) for (const r of this.idleWaiters.splice(0)) r();
  }

  private tunnel(
    socket: net.Socket,
    plan: Extract<OutboundPlan, { kind: "hbone" }>,
    base: Omit<ConnRecord, "dst" | "labels">,
    srcIdentity: string,
    srcIp: string,
  ): void {
    const dst = {
      ip: plan.viaWaypoint ? (base.origDst?.ip ?? plan.tunnel.ip) : plan.tunnel.ip,
      port: Number(plan.authority.slice(plan.authority.lastIndexOf(":") + 1)),
      identity: plan.viaWaypoint ? undefined : plan.peerIdentity,
      workload: plan.viaWaypoint ? undefined : plan.workload,
    };
    const rec: ConnRecord = {
      ...base,
      dst,
      tunnel: { ip: plan.tunnel.ip, port: plan.tunnel.port, waypoint: plan.viaWaypoint },
      labels: istioLabelsFor(
        "source",
        base.src,
        plan.viaWaypoint ? { ip: dst.ip, workload: plan.workload, identity: plan.peerIdentity } : dst,
        plan.service,
        true,
      ),
    };
    // Early data: what the application sent before the peer answered goes
    // out with the CONNECT instead of one round trip later (a new connection
    // per request pays that round trip through both ztunnels otherwise).
    let early: EarlyForward | undefined;
    this.opts.hbone
      .connect({
        srcIdentity,
        srcIp,
        dstIdentity: plan.peerIdentity,
        dstIp: plan.tunnel.ip,
        dstPort: plan.tunnel.port,
        authority: plan.authority,
        ...(base.src.workload ? { baggage: peerBaggageFor(base.src.workload) } : {}),
        onStream: (stream) => {
          if (socket.destroyed) return;
          // Called again when the client retries a stream the peer never
          // processed (refused, or caught by a draining peer's GOAWAY during
          // an upgrade): what went out early on the dead stream goes again.
          const prior = early;
          prior?.stop();
          early = forwardEarly(socket, stream, prior);
        },
      })
      .then(
        (stream) => {
          early?.stop();
          // The bridge's close callback shares this scope: drop the early
          // forwarder (and the chunks it kept for a retry) so an idle
          // connection does not hold them for its whole life.
          const earlyPaused = early?.paused === true;
          early = undefined;
          this.pending--;
          if (socket.destroyed) {
            // The application gave up while the tunnel was being set up.
            resetStream(stream, 0x8);
            connectFailures.inc({ direction: "outbound", reason: "client_gone" });
            this.settled();
            return;
          }
          this.splice(socket, stream, rec);
          // The early forwarder may have paused on backpressure: the bridge's own takes over.
          if (earlyPaused) socket.resume();
        },
        (err: Error) => {
          early?.stop();
          early = undefined;
          this.pending--;
          const reason =
            err instanceof HboneConnectError
              ? err.status === 401 || err.status === 403
                ? "denied"
                : err.reason
              : "error";
          connectFailures.inc({ direction: "outbound", reason });
          connRefused({ ...base, dst }, `hbone_${reason}`, { error: err.message });
          socket.resetAndDestroy();
          this.settled();
        },
      );
  }

  /**
   * Bridges an established tunnel. A method of its own so that what the
   * bridge's close callback keeps alive for the connection's life is just
   * this scope (socket, rec), not the set-up's (plan, early data, closures).
   */
  private splice(socket: net.Socket, stream: ClientHttp2Stream, rec: ConnRecord): void {
    connOpened(rec);
    // A FIN that came early was passed on already (END_STREAM); the socket's readableEnded says so to bridge().
    const b = bridge(socket, stream, (end) => {
      connClosed(rec, socket.bytesRead, socket.bytesWritten, end.reason, end.detail);
      this.settled(b);
    });
    this.active.add(b);
  }

  private passthrough(
    socket: net.Socket,
    plan: Extract<OutboundPlan, { kind: "passthrough" }>,
    base: Omit<ConnRecord, "dst" | "labels">,
  ): void {
    const dst = { ip: plan.dst.ip, port: plan.dst.port, workload: plan.workload };
    const rec: ConnRecord = {
      ...base,
      dst,
      labels: istioLabelsFor("source", base.src, dst, plan.service, false),
    };
    let upstream: net.Socket;
    try {
      upstream = this.connectPlain(plan.dst);
    } catch (err) {
      this.pending--;
      connectFailures.inc({ direction: "passthrough", reason: "error" });
      connRefused({ ...base, dst }, "connect_error", { error: (err as Error).message });
      socket.resetAndDestroy();
      this.settled();
      return;
    }
    const timer = setTimeout(() => upstream.destroy(new Error("connect timeout")), this.connectTimeoutMs);
    const onFail = (err: Error & { code?: string }) => {
      clearTimeout(timer);
      this.pending--;
      connectFailures.inc({
        direction: "passthrough",
        reason: err.message === "connect timeout" ? "timeout" : "error",
      });
      connRefused({ ...base, dst }, "connect_error", { error: err.code ?? err.message });
      socket.resetAndDestroy();
      this.settled();
    };
    upstream.once("error", onFail);
    upstream.once("connect", () => {
      clearTimeout(timer);
      upstream.off("error", onFail);
      this.pending--;
      if (socket.destroyed) {
        upstream.destroy();
        connectFailures.inc({ direction: "passthrough", reason: "client_gone" });
        this.settled();
        return;
      }
      connOpened(rec);
      const b = bridgeSockets(socket, upstream, (end) => {
        connClosed(rec, socket.bytesRead, socket.bytesWritten, end.reason, end.detail);
        this.settled(b);
      });
      this.active.add(b);
    });
  }
}

interface EarlyForward {
  stop(): void;
  readonly paused: boolean;
  /** Everything written so far (kept until the response: a retried stream must carry it again). */
  readonly sent: readonly Buffer[];
  readonly ended: boolean;
}

/**
 * Socket → stream before the CONNECT response (backpressure and FIN too);
 * stop() hands over to bridge(). With `prior` (a retry), first replays what
 * the prior stream was sent. What is kept is bounded by backpressure: the
 * socket pauses once the stream's buffer is full and resumes in bridge().
 */
function forwardEarly(socket: net.Socket, stream: Writable, prior?: EarlyForward): EarlyForward {
  const state = { paused: prior?.paused ?? false, ended: prior?.ended ?? false };
  const sent: Buffer[] = [];
  const send = (chunk: Buffer) => {
    sent.push(chunk);
    if (!stream.write(chunk)) {
      state.paused = true;
      socket.pause();
    }
  };
  for (const chunk of prior?.sent ?? []) send(chunk);
  const onEnd = () => {
    state.ended = true;
    stream.end();
  };
  if (state.ended) stream.end();
  socket.on("data", send);
  socket.once("end", onEnd);
  return {
    stop() {
      socket.off("data", send);
      socket.off("end", onEnd);
    },
    get paused() {
      return state.paused;
    },
    sent,
    get ended() {
      return state.ended;
    },
  };
}

function ignore(): void {}

// HBONE server: TLS 1.3 with client certificates chained to the mesh roots,
// then HTTP/2 where only CONNECT to an `ip:port` authority is accepted.
//
// In-pod mode (DESIGN.md): a listener lives inside one pod's network
// namespace, and the listener that accepted decides which certificate to
// present; there is no SNI. So each listener has its own tls.Server (never
// listening itself) fed by a plain net.Server, whose secure context follows
// that listener's certificate provider. Listeners can be created on an
// existing net.Server or an inherited fd (capture inside a netns, upgrade
// handover) as well as on host:port.
//
// Bad input (non-TLS bytes, failed handshakes, garbled HTTP/2, oversized
// frames) closes that connection only, is counted by reason, and is logged
// at most once per reason per interval so an attacker cannot flood the log.
import http2, { type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import net, { type AddressInfo } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { type Logger, logger } from "../telemetry/logger.js";
import { counter, gauge } from "../telemetry/metrics.js";
import { MAX_BAGGAGE_BYTES } from "./baggage.js";
import {
  type CertBundle,
  DEFAULT_CONNECTION_WINDOW,
  DEFAULT_STREAM_WINDOW,
  type IpPort,
  MAX_FRAME_SIZE,
  normalizeIp,
  parseAuthority,
  spiffeFromSubjectAltName,
} from "./types.js";

export const protocolErrors = counter(
  "ambit_hbone_protocol_errors_total",
  "Connections or streams on the HBONE port refused for bad input, by reason",
  ["reason"],
);

const acceptErrors = counter(
  "ambit_hbone_accept_errors_total",
  "Errors accepting connections on HBONE listeners",
  ["code"],
);
const serverSessions = gauge("ambit_hbone_server_sessions", "HTTP/2 sessions open on HBONE listeners");

export type ListenTarget = net.Server | { fd: number } | { host: string; port: number; backlog?: number };

export interface ListenerContext {
  /** The certificate this listener presents (in-pod mode: its pod's identity). Called per connection; cache inside. */
  cert: () => CertBundle | Promise<CertBundle>;
  /** In-pod mode: the uid of the workload whose namespace this listener lives in. */
  podUid?: string;
  /** For logs. */
  name?: string;
}

export interface HboneStreamInfo {
  /** SPIFFE id from the client certificate's URI SAN (undefined when it carries none). */
  peerIdentity?: string;
  /** TCP source of the HBONE connection. */
  peerAddress: string;
  peerPort: number;
  /** The application destination from :authority. */
  authority: IpPort;
  listener: ListenerContext;
  /** The CONNECT's `baggage` (peer metadata; unauthenticated, for metric labels only), when at most 1 KiB. */
  baggage?: string;
}

/** Takes over an accepted CONNECT stream: responds (200 or a refusal) and pipes. */
export type HboneHandler = (stream: ServerHttp2Stream, info: HboneStreamInfo) => void;

export interface HboneServerOptions {
  handler: HboneHandler;
  handshakeTimeoutMs?: number;
  /** HTTP/2 per-stream receive window (default 4 MiB) and connection window (default 16 MiB). */
  windowSize?: number;
  connectionWindowSize?: number;
  maxConcurrentStreams?: number;
  /**
   * A session quiet for this long is probed with a PING: no answer within
   * pingTimeoutMs means the peer (or nghttp2, after a connection error such
   * as an oversized frame, which Node does not report) is stuck, and it is
   * destroyed; an answer with no open streams closes it gracefully.
   */
  sessionIdleTimeoutMs?: number;
  pingTimeoutMs?: number;
  log?: Logger;
}

type ProtocolErrorReason =
  | "tls_handshake"
  | "handshake_timeout"
  | "peer_cert"
  | "http2_protocol"
  | "http2_frame"
  | "http2_unresponsive"
  | "http2_preface_timeout"
  | "method"
  | "authority";

export class HboneListener {
  private readonly tlsServer: tls.Server;
  private bundle?: CertBundle;
  private accepting = true;

  constructor(
    /** The listening socket, or undefined when connections are fed in with accept(). */
    readonly server: net.Server | undefined,
    readonly ctx: ListenerContext,
    private readonly owner: HboneServer,
  ) {
    this.tlsServer = tls.createServer({
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      handshakeTimeout: owner.handshakeTimeoutMs,
    });
    this.tlsServer.on("secureConnection", (s: TLSSocket) => owner.onSecure(s, this));
    this.tlsServer.on("tlsClientError", (err: Error & { code?: string }, s: TLSSocket) => {
      let reason: ProtocolErrorReason = "tls_handshake";
      if (s.authorizationError) reason = "peer_cert";
      else if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") reason = "handshake_timeout";
      owner.protocolError(
        reason,
        `${err.code ?? ""} ${s.authorizationError ?? err.message}`,
        s.remoteAddress,
        this,
      );
      s.destroy();
    });
    server?.on("connection", (raw: net.Socket) => this.accept(raw));
  }

  address(): AddressInfo {
    return this.server?.address() as AddressInfo;
  }

  /** The listening fd (for handing over to a successor process), when the platform exposes it. */
  get fd(): number | undefined {
    return (this.server as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  /** Closes the listening socket; established connections carry on. */
  stopAccepting(): Promise<void> {
    if (!this.accepting) return Promise.resolve();
    this.accepting = false;
    // net.Server.close's callback waits for every connection to end; the
    // listening socket itself is closed synchronously, which is all we need.
    if (this.server?.listening) this.server.close();
    return Promise.resolve();
  }

  /** Serves one accepted TCP connection (the capture layer may accept it itself and feed it here). */
  accept(raw: net.Socket): void {
    raw.on("error", ignore);
    // Tunnelled traffic is latency sensitive; the capture layer's sockets may not have it set.
    raw.setNoDelay(true);
    if (!this.accepting) {
      raw.destroy();
      return;
    }
    let got: CertBundle | Promise<CertBundle>;
    try {
      got = this.ctx.cert();
    } catch (err) {
      this.owner.log.warn(
        { listener: this.ctx.name, err: (err as Error).message },
        "HBONE listener has no certificate",
      );
      raw.destroy();
      return;
    }
    if (got instanceof Promise) {
      got.then(
        (b) => this.handOver(raw, b),
        (err: Error) => {
          this.owner.log.warn(
            { listener: this.ctx.name, err: err.message },
            "HBONE listener has no certificate",
          );
          raw.destroy();
        },
      );
    } else this.handOver(raw, got);
  }

  private handOver(raw: net.Socket, b: CertBundle): void {
    if (raw.destroyed) return;
    if (b !== this.bundle) {
      this.tlsServer.setSecureContext({
        key: b.keyPem,
        cert: b.certChainPem.join("\n"),
        ca: b.rootsPem,
        minVersion: "TLSv1.3",
      });
      this.bundle = b;
    }
    this.tlsServer.emit("connection", raw);
  }
}

export class HboneServer {
  readonly log: Logger;
  readonly handshakeTimeoutMs: number;
  private readonly listeners = new Set<HboneListener>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();
  private readonly windowSize: number;
  private readonly connectionWindowSize: number;
  private readonly maxConcurrentStreams: number;
  private readonly sessionIdleTimeoutMs: number;
  private readonly pingTimeoutMs: number;
  private draining = false;

  constructor(private readonly opts: HboneServerOptions) {
    this.log = opts.log ?? logger("hbone.server");
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.windowSize = opts.windowSize ?? DEFAULT_STREAM_WINDOW;
    this.connectionWindowSize = opts.connectionWindowSize ?? DEFAULT_CONNECTION_WINDOW;
    this.maxConcurrentStreams = opts.maxConcurrentStreams ?? 1000;
    this.sessionIdleTimeoutMs = opts.sessionIdleTimeoutMs ?? 300_000;
    this.pingTimeoutMs = opts.pingTimeoutMs ?? 5000;
  }

  /** Starts serving on a net.Server (listening or not yet), an inherited fd, or host:port; resolves once listening. */
  async listen(target: ListenTarget, ctx: ListenerContext): Promise<HboneListener> {
    let server: net.Server;
    if (target instanceof net.Server) server = target;
    else server = net.createServer({ pauseOnConnect: true, noDelay: true });
    const l = new HboneListener(server, ctx, this);
    this.listeners.add(l);
    server.once("close", () => this.listeners.delete(l));
    // A given net.Server may start listening later (its owner decides when).
    if (!(target instanceof net.Server)) {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        const done = () => {
          server.off("error", reject);
          resolve();
        };
        if ("fd" in target) server.listen({ fd: target.fd }, done);
        else server.listen({ host: target.host, port: target.port, backlog: target.backlog ?? 1024 }, done);
      });
      // Accept failures (EMFILE when the fd limit is reached) must not take the process down.
      server.on("error", (err: Error & { code?: string }) => {
        acceptErrors.inc({ code: err.code ?? "unknown" });
        this.log.warn({ listener: ctx.name, err: err.message }, "HBONE listener accept failed");
      });
    }
    return l;
  }

  /** A listener without a socket of its own: feed it connections with `accept(socket)`. */
  attach(ctx: ListenerContext): HboneListener {
    const l = new HboneListener(undefined, ctx, this);
    this.listeners.add(l);
    return l;
  }

  /** Forgets a listener (a pod un-enrolled); its established sessions carry on until they end. */
  detach(l: HboneListener): Promise<void> {
    this.listeners.delete(l);
    return l.stopAccepting();
  }

  /** Open HTTP/2 sessions (for metrics and tests). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting on every listener, sends GOAWAY so clients open new
   * sessions elsewhere, lets open streams finish for up to graceMs, then
   * destroys what is left.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    await Promise.all([...this.listeners].map((l) => l.stopAccepting()));
    const open = [...this.sessions].filter((s) => !s.destroyed);
    if (open.length === 0) return;
    const closed = open.map((s) => new Promise((r) => s.once("close", r)));
    for (const s of open) s.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const s of this.sessions) s.destroy();
  }

  close(): Promise<void> {
    return this.drain(0);
  }

  /** @internal a listener's TLS handshake completed (client cert already verified by tls.Server). */
  onSecure(tlsSocket: TLSSocket, listener: HboneListener): void {
    const peerCert = tlsSocket.getPeerCertificate();
    const peerIdentity = spiffeFromSubjectAltName(peerCert?.subjectaltname);
    // The peer's certificate authenticates every stream of the session: past
    // its notAfter the session takes no new stream (GOAWAY at that instant;
    // open streams finish), so the client handshakes again with a current one.
    const peerValidTo = Date.parse(peerCert?.valid_to ?? "");
    const peerAddress = normalizeIp(tlsSocket.remoteAddress);
    const peerPort = tlsSocket.remotePort ?? 0;
    const session = http2.performServerHandshake(tlsSocket, {
      settings: {
        initialWindowSize: this.windowSize,
        maxFrameSize: MAX_FRAME_SIZE,
        maxConcurrentStreams: this.maxConcurrentStreams,
        enablePush: false,
      },
      maxSessionMemory: 64,
    });
    this.sessions.add(session);
    serverSessions.inc();
    // Accepted before the listeners closed but secured after drain began (an
    // upgrade under load): serve the stream the client is about to send, then
    // GOAWAY so its next ones go to the successor. Destroying it would fail a request.
    if (this.draining) {
      const goaway = () => {
        if (!session.closed && !session.destroyed) session.close();
      };
      session.once("stream", () => setImmediate(goaway));
      setTimeout(goaway, this.handshakeTimeoutMs).unref();
    }
    if (Number.isFinite(peerValidTo)) {
      const expiry = setTimeout(
        () => {
          if (!session.closed && !session.destroyed) session.close();
        },
        Math.max(0, Math.min(peerValidTo - Date.now(), 2 ** 31 - 1)),
      );
      expiry.unref();
      session.once("close", () => clearTimeout(expiry));
    }
    let sawError = false;
    session.on("error", (err: Error & { code?: string }) => {
      sawError = true;
      this.protocolError("http2_protocol", `${err.code ?? ""} ${err.message}`, peerAddress, listener);
    });
    session.on("frameError", (type: number, code: number) => {
      if (sawError) return;
      sawError = true;
      this.protocolError("http2_frame", `frame type ${type} error ${code}`, peerAddress, listener);
    });
    session.on("goaway", (code: number) => {
      // A peer that sends GOAWAY with an error code saw us as broken or was itself garbled.
      if (code !== http2.constants.NGHTTP2_NO_ERROR && !sawError) {
        sawError = true;
        this.protocolError("http2_protocol", `peer GOAWAY code ${code}`, peerAddress, listener);
      }
    });
    session.once("close", () => {
      this.sessions.delete(session);
      serverSessions.dec();
      // A garbled preface closes the session without an 'error' event.
      if (!sawError && !session.remoteSettings && !tlsSocket.destroyed) tlsSocket.destroy();
    });
    session.once("connect", () => session.setLocalWindowSize(this.connectionWindowSize));
    // A client that finished TLS must send its preface and SETTINGS promptly.
    const prefaceTimer = setTimeout(() => {
      if (session.destroyed) return;
      sawError = true;
      this.protocolError(
        "http2_preface_timeout",
        "no HTTP/2 preface after the TLS handshake",
        peerAddress,
        listener,
      );
      session.destroy();
    }, this.handshakeTimeoutMs);
    prefaceTimer.unref();
    session.once("remoteSettings", () => clearTimeout(prefaceTimer));
    session.once("close", () => clearTimeout(prefaceTimer));
    let openStreams = 0;
    const onStreamClosed = () => {
      openStreams--;
    };
    session.setTimeout(this.sessionIdleTimeoutMs, () => {
      if (session.destroyed) return;
      const deadline = setTimeout(() => {
        if (session.destroyed) return;
        sawError = true;
        this.protocolError("http2_unresponsive", "no PING answer on an idle session", peerAddress, listener);
        session.destroy();
      }, this.pingTimeoutMs);
      deadline.unref();
      const answered = (err: Error | null) => {
        clearTimeout(deadline);
        if (err) session.destroy();
        else if (openStreams === 0) session.close();
      };
      try {
        if (!session.ping(answered)) answered(new Error("PING not sent"));
      } catch (err) {
        answered(err as Error);
      }
    });
    session.on("stream", (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      stream.on("error", ignore);
      openStreams++;
      // `on` with one listener per session: a `once` wrapper and a closure
      // per stream lived as long as the tunnel (10,000 idle tunnels).
      stream.on("close", onStreamClosed);
      // Sent before our GOAWAY reached the client: refused, so the client retries it on a new session.
      if (Date.now() >= peerValidTo) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (headers[":method"] !== "CONNECT") {
        this.protocolError(
          "method",
          `method ${String(headers[":method"]).slice(0, 16)}`,
          peerAddress,
          listener,
        );
        respondAndClose(stream, 405);
        return;
      }
      const authority = parseAuthority(headers[":authority"]);
      if (!authority) {
        this.protocolError(
          "authority",
          `authority ${String(headers[":authority"]).slice(0, 64)}`,
          peerAddress,
          listener,
        );
        respondAndClose(stream, 400);
        return;
      }
      const baggage = headers.baggage;
      this.opts.handler(stream, {
        peerIdentity,
        peerAddress,
        peerPort,
        authority,
        listener: listener.ctx,
        ...(typeof baggage === "string" && baggage.length <= MAX_BAGGAGE_BYTES ? { baggage } : {}),
      });
    });
  }

  /** @internal counts and (rate-limited) logs one refused connection or stream. */
  protocolError(
    reason: ProtocolErrorReason,
    detail: string,
    peer: string | undefined,
    l: HboneListener,
  ): void {
    protocolErrors.inc({ reason });
    const now = Date.now();
    const last = this.lastLogged.get(reason);
    if (last && now - last.at < 10_000) {
      last.suppressed++;
      return;
    }
    this.lastLogged.set(reason, { at: now, suppressed: 0 });
    this.log.warn(
      {
        reason,
        detail: detail.trim(),
        peer: normalizeIp(peer),
        listener: l.ctx.name,
        suppressedSinceLast: last?.suppressed ?? 0,
      },
      "HBONE connection refused",
    );
  }
}

function respondAndClose(stream: ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.closed) return;
  try {
    stream.respond({ ":status": status }, { endStream: true });
  } catch {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }
}

function ignore(): void {}

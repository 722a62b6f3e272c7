// HBONE client: HTTP/2 CONNECT over TLS 1.3 with the source workload's
// certificate, to the destination's IP on 15008. The server certificate must
// chain to the mesh roots and carry exactly the expected destination SPIFFE
// id. Sessions are pooled (pool.ts); each connect() is one stream, returned
// as a Duplex once the peer answered 200.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import net from "node:net";
import tls, { type PeerCertificate } from "node:tls";
import { AmbitError } from "../errors/errors.js";
import { gauge } from "../telemetry/metrics.js";
import { resetStream } from "./bridge.js";
import { HboneSessionPool, type Lease, type PoolKey } from "./pool.js";
import {
  type CertSource,
  type ConnectRaw,
  DEFAULT_CONNECTION_WINDOW,
  DEFAULT_STREAM_WINDOW,
  HBONE_PORT,
  MAX_FRAME_SIZE,
  spiffeFromSubjectAltName,
} from "./types.js";

export interface HboneClientOptions {
  certs: CertSource;
  /** Our cap of concurrent streams per HTTP/2 session (the peer's may be lower). */
  maxStreamsPerSession?: number;
  idleTimeoutMs?: number;
  /** TCP+TLS+HTTP/2 setup and the CONNECT response, together. */
  connectTimeoutMs?: number;
  /** HTTP/2 per-stream receive window (bytes); default 4 MiB, as Istio's ztunnel. */
  windowSize?: number;
  /** HTTP/2 connection receive window, bounding what one session may buffer; default 16 MiB. */
  connectionWindowSize?: number;
  /** Bind the TCP connection to the source IP (default: let the injected connectRaw or the kernel decide). */
  bindSourceIp?: boolean;
  connectRaw?: ConnectRaw;
}

export interface HboneConnectRequest {
  srcIdentity: string;
  srcIp: string;
  /** Expected SPIFFE id of the peer (destination workload or waypoint). */
  dstIdentity: string;
  /** IP the tunnel goes to (the pod or waypoint IP). */
  dstIp: string;
  dstPort?: number;
  /** `ip:port` of the application the peer should connect to. */
  authority: string;
  /** W3C `baggage` naming the source workload (peer metadata for the receiver's metric labels). */
  baggage?: string;
  /**
   * Called with the stream as soon as the CONNECT request is sent, before
   * the response: the caller may write early data (RFC 9113 section 8.5:
   * every DATA frame after the request's HEADERS is tunnel data), saving a
   * round trip per connection. If the tunnel then fails, the stream is reset
   * and the data is dropped with it.
   */
  onStream?: (stream: ClientHttp2Stream) => void;
}

/** Raised when the tunnel could not be set up; `code` is a stable reason for logs and metrics. */
export class HboneConnectError extends AmbitError {
  constructor(
    readonly reason: "timeout" | "tls" | "identity" | "status" | "reset" | "session",
    message: string,
    readonly status?: number,
  ) {
    super("HBONE_PROTOCOL", message, { reason, status });
    this.name = "HboneConnectError";
  }

  /** The peer did not process the stream (refused, or the session was going away): safe to retry. */
  unprocessed = false;
}

/** A stream's pool lease, read by the client's one shared 'close' listener. */
const kLease = Symbol("ambit.hbone.lease");
type Leased = { [kLease]: Lease };

const poolSessions = gauge("ambit_hbone_pool_sessions", "HTTP/2 sessions held by HBONE client pools");

export class HboneClient {
  readonly pool: HboneSessionPool;
  private readonly connectTimeoutMs: number;
  private readonly windowSize: number;
  private readonly connectionWindowSize: number;
  private readonly connectRaw: ConnectRaw;
  private lastCount = 0;
  /** Per session: the earlier certificate notAfter of the two ends (the pool checks it at acquire). */
  private readonly sessionValidUntil = new WeakMap<ClientHttp2Session, number>();
  /** Releases a stream's lease when it closes: one function for every stream, not a closure per tunnel. */
  private readonly releaseOnClose: (this: ClientHttp2Stream) => void;

  constructor(private readonly opts: HboneClientOptions) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.windowSize = opts.windowSize ?? DEFAULT_STREAM_WINDOW;
    this.connectionWindowSize = opts.connectionWindowSize ?? DEFAULT_CONNECTION_WINDOW;
    const bind = opts.bindSourceIp ?? false;
    this.connectRaw =
      opts.connectRaw ??
      ((dst, src) =>
        net.connect({
          host: dst.ip,
          port: dst.port,
          noDelay: true,
          ...(bind && src.ip ? { localAddress: src.ip } : {}),
        }));
    this.pool = new HboneSessionPool({
      open: (key) => this.openSession(key),
      validUntil: (session) => this.sessionValidUntil.get(session),
      maxStreamsPerSession: opts.maxStreamsPerSession ?? 100,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
      onSessionCountChange: (n) => {
        poolSessions.inc(n - this.lastCount);
        this.lastCount = n;
      },
    });
    const pool = this.pool;
    this.releaseOnClose = function (this: ClientHttp2Stream) {
      pool.release((this as unknown as Leased)[kLease]);
    };
  }

  /** Opens one CONNECT stream; resolves once the peer answered 200. */
  async connect(req: HboneConnectRequest): Promise<ClientHttp2Stream> {
    // A stream the peer never processed (refused, or opened on a session that
    // just got GOAWAY: the peer is draining for an upgrade) is safe to retry
    // on a fresh session; no byte of it reached the destination.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.connectOnce(req);
      } catch (err) {
        if (attempt >= 2 || !(err instanceof HboneConnectError) || !err.unprocessed) throw err;
      }
    }
  }

  private async connectOnce(req: HboneConnectRequest): Promise<ClientHttp2Stream> {
    const key: PoolKey = {
      srcIdentity: req.srcIdentity,
      srcIp: req.srcIp,
      dstIdentity: req.dstIdentity,
      dstIp: req.dstIp,
      dstPort: req.dstPort ?? HBONE_PORT,
    };
    const lease = this.pool.acquire(key);
    let timer: NodeJS.Timeout | undefined;
    let stream: ClientHttp2Stream | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (stream) resetStream(stream, http2.constants.NGHTTP2_CANCEL);
        reject(
          new HboneConnectError("timeout", `HBONE connect to ${req.dstIp} (${req.authority}) timed out`),
        );
      }, this.connectTimeoutMs);
    });
    try {
      const session = await Promise.race([lease.entry.ready, timeout]);
      stream = this.openStream(session, req.authority, lease, req.baggage);
      req.onStream?.(stream);
      return await Promise.race([awaitResponse(stream, req), timeout]);
    } catch (err) {
      // Idempotent: the stream's own 'close' releases too.
      if (stream) resetStream(stream, http2.constants.NGHTTP2_CANCEL);
      this.pool.release(lease);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops new streams; sessions close when their streams end. */
  close(): void {
    this.pool.close();
  }

  destroy(): void {
    this.pool.destroy();
  }

  private openStream(
    session: ClientHttp2Session,
    authority: string,
    lease: Lease,
    baggage: string | undefined,
  ): ClientHttp2Stream {
    let stream: ClientHttp2Stream;
    try {
      const headers: http2.OutgoingHttpHeaders = { ":method": "CONNECT", ":authority": authority };
      if (baggage) headers.baggage = baggage;
      stream = session.request(headers, { endStream: false });
    } catch (err) {
      // The session went away between the lease and the request.
      const e = new HboneConnectError("session", `HBONE session unusable: ${(err as Error).message}`);
      e.unprocessed = true;
      throw e;
    }
    // `on`: close fires once, and `once` would keep a wrapper per open stream (see bridge.ts).
    (stream as unknown as Leased)[kLease] = lease;
    stream.on("close", this.releaseOnClose);
    return stream;
  }

  private async openSession(key: PoolKey): Promise<ClientHttp2Session> {
    const bundle = await this.opts.certs.get(key.srcIdentity);
    const raw = this.connectRaw({ ip: key.dstIp, port: key.dstPort }, { ip: key.srcIp });
    const socket = tls.connect({
      socket: raw,
      ...(bundle.secureContext
        ? { secureContext: bundle.secureContext }
        : { key: bundle.keyPem, cert: bundle.certChainPem.join("\n"), ca: bundle.rootsPem }),
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      // No SNI: the listener that accepted tells the peer which pod it is.
      servername: "",
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const got = spiffeFromSubjectAltName(cert.subjectaltname);
        if (got === key.dstIdentity) return undefined;
        return new HboneConnectError(
          "identity",
          `HBONE peer ${key.dstIp} presented ${got ?? "no SPIFFE id"}, expected ${key.dstIdentity}`,
        );
      },
    });
    // A pool-owned session must die with its socket; the connect timeout in
    // connect() only bounds the caller, so bound the handshake here too.
    socket.setTimeout(this.connectTimeoutMs, () =>
      socket.destroy(new HboneConnectError("timeout", "TLS handshake timed out")),
    );
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        raw.destroy();
        reject(
          err instanceof HboneConnectError
            ? err
            : new HboneConnectError("tls", `HBONE TLS to ${key.dstIp}: ${err.message}`),
        );
      };
      socket.once("error", onError);
      socket.once("secureConnect", () => {
        socket.off("error", onError);
        socket.setTimeout(0);
        resolve();
      });
    });
    const session = http2.connect(
      `https://${key.dstIp.includes(":") ? `[${key.dstIp}]` : key.dstIp}:${key.dstPort}`,
      {
        createConnection: () => socket,
        settings: { initialWindowSize: this.windowSize, maxFrameSize: MAX_FRAME_SIZE, enablePush: false },
        maxSessionMemory: 64,
      },
    );
    session.on("error", () => {
      // Errors surface on the streams; the pool drops the session on close.
    });
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("close", () =>
        reject(new HboneConnectError("session", `HBONE session to ${key.dstIp} closed during setup`)),
      );
    });
    session.setLocalWindowSize(this.connectionWindowSize);
    socket.setNoDelay(true);
    // A session authenticates every stream it will carry: it takes no new
    // streams once either side's certificate has expired (the open ones
    // finish). New connections then need a fresh handshake, which waits for
    // a fresh certificate: an expired one never authenticates new traffic.
    const peerEnd = Date.parse(socket.getPeerCertificate()?.valid_to ?? "");
    const validUntil = Math.min(
      bundle.notAfter.getTime(),
      Number.isFinite(peerEnd) ? peerEnd : Number.POSITIVE_INFINITY,
    );
    if (Number.isFinite(validUntil)) {
      this.sessionValidUntil.set(session, validUntil);
      const expiry = setTimeout(
        () => session.close(),
        Math.max(0, Math.min(validUntil - Date.now(), 2 ** 31 - 1)),
      );
      expiry.unref();
      session.once("close", () => clearTimeout(expiry));
    }
    return session;
  }
}

function awaitResponse(stream: ClientHttp2Stream, req: HboneConnectRequest): Promise<ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const refused = () => stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
    const onClose = () => {
      const e = new HboneConnectError(
        "reset",
        `HBONE stream to ${req.dstIp} (${req.authority}) closed before a response (code ${stream.rstCode})`,
      );
      e.unprocessed = refused();
      reject(e);
    };
    const onError = (err: Error) => {
      const e = new HboneConnectError("reset", `HBONE stream to ${req.dstIp}: ${err.message}`);
      e.unprocessed = refused() || err.message.includes("NGHTTP2_REFUSED_STREAM");
      reject(e);
    };
    stream.once("close", onClose);
    stream.once("error", onError);
    stream.once("response", (headers) => {
      stream.off("close", onClose);
      stream.off("error", onError);
      // Errors after this point surface as 'close' with an rstCode to the
      // owner; a listener must exist until the owner attaches its own.
      stream.on("error", ignore);
      const status = Number(headers[":status"]);
      if (status === 200) {
        resolve(stream);
        return;
      }
      resetStream(stream, http2.constants.NGHTTP2_CANCEL);
      reject(
        new HboneConnectError(
          "status",
          `HBONE peer ${req.dstIp} answered ${status} for ${req.authority}`,
          status,
        ),
      );
    });
  });
}

function ignore(): void {}

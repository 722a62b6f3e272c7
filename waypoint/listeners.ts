// Where connections enter: `serveStream` takes a stream (an HBONE CONNECT
// stream in production, a TCP socket in tests) with the destination it was
// addressed to, and feeds it to the HTTP/1.1 or HTTP/2 server by the service
// port's protocol (sniffing the h2c preface on plain `http` ports), or pipes
// it straight to an endpoint for TCP ports. HTTP/1.1 upgrades (WebSocket...)
// are matched and authorized like requests, then spliced.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { WaypointProtocol } from "../core/model/waypoint.js";
import { clusterName } from "../core/model/waypoint.js";
import type { ConnMeta, HttpProxy } from "./proxy.js";
import { matchRoute } from "./routes/match.js";
import type { WaypointState } from "./state.js";
import { httpSocket, socketLike, type Upstream } from "./upstream/upstream.js";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Pipes both ways; either side closing or failing closes the other. */
function splice(a: Duplex, b: Duplex): void {
  a.on("error", () => b.destroy());
  b.on("error", () => a.destroy());
  a.on("close", () => b.destroy());
  b.on("close", () => a.destroy());
  a.pipe(b);
  b.pipe(a);
}

export class Listeners {
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly h1Meta = new WeakMap<object, ConnMeta>();
  private readonly h2Meta = new WeakMap<object, ConnMeta>();
  private pendingH2: ConnMeta | undefined;
  private readonly tcpServers = new Set<net.Server>();
  private readonly open = new Set<Duplex>();
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1.1 requests in flight per connection, so close() can drop idle ones at once. */
  private readonly h1Active = new WeakMap<object, number>();
  private closing = false;

  constructor(
    private readonly proxy: HttpProxy,
    private readonly state: WaypointState,
    private readonly upstream: Upstream,
  ) {
    this.h1 = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 30_000 });
    this.h1.on("request", (req, res) => {
      const sock = req.socket;
      const meta = this.h1Meta.get(sock);
      if (!meta) return res.destroy();
      this.h1Active.set(sock, (this.h1Active.get(sock) ?? 0) + 1);
      res.once("close", () => {
        const n = (this.h1Active.get(sock) ?? 1) - 1;
        this.h1Active.set(sock, n);
        if (this.closing && n === 0) sock.destroy();
      });
      if (this.closing) res.shouldKeepAlive = false;
      this.proxy.handle(req, res, meta);
    });
    this.h1.on("upgrade", (req: http.IncomingMessage, sock: Duplex, head: Buffer) =>
      this.upgrade(req, sock, head),
    );
    this.h2 = http2.createServer({ settings: { initialWindowSize: 4 << 20, maxConcurrentStreams: 1000 } });
    this.h2.on("session", (s: http2.ServerHttp2Session) => {
      if (this.pendingH2) this.h2Meta.set(s, this.pendingH2);
      this.h2Sessions.add(s);
      s.once("close", () => this.h2Sessions.delete(s));
      try {
        s.setLocalWindowSize(16 << 20);
      } catch {
        // keep the default
      }
    });
    this.h2.on("request", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const meta = this.h2Meta.get(req.stream.session as object);
      if (meta) this.proxy.handle(req, res, meta);
      else res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
  }

  /** Serves one connection addressed to meta.dst. */
  serveStream(stream: Duplex, meta: ConnMeta): void {
    socketLike(stream);
    this.open.add(stream);
    stream.once("close", () => this.open.delete(stream));
    stream.on("error", () => {});
    const svc = this.state.byDestination(meta.dst.ip, meta.dst.port);
    const proto: WaypointProtocol = svc?.ports.get(meta.dst.port) ?? "http";
    if (proto === "tcp") {
      this.passthrough(stream, meta, svc ? clusterName(svc.svc.key, meta.dst.port) : undefined);
      return;
    }
    if (proto === "http2" || proto === "grpc") {
      this.toH2(stream, meta);
      return;
    }
    // http: HTTP/1.1 unless the client starts with the h2c prior-knowledge preface
    stream.once("data", (chunk: Buffer) => {
      stream.pause();
      stream.unshift(chunk);
      const n = Math.min(chunk.length, H2_PREFACE.length);
      if (chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n)) && n >= 3) this.toH2(stream, meta);
      else this.toH1(stream, meta);
    });
  }

  private toH1(raw: Duplex, meta: ConnMeta): void {
    const stream = httpSocket(raw);
    this.h1Meta.set(stream, meta);
    this.h1.emit("connection", stream);
    raw.resume();
  }

  private toH2(stream: Duplex, meta: ConnMeta): void {
    this.pendingH2 = meta;
    try {
      this.h2.emit("connection", stream);
    } finally {
      this.pendingH2 = undefined;
    }
  }

  private passthrough(stream: Duplex, meta: ConnMeta, cluster: string | undefined): void {
    const live = cluster ? this.state.cluster(cluster) : undefined;
    const ep = live?.state.pick(meta.sourceIp ? { hashKey: meta.sourceIp } : {});
    const target = ep ? { ip: ep.ip, port: ep.port } : meta.dst;
    this.upstream
      .connect(target, {
        cluster: cluster ?? "passthrough",
        ...(meta.peerIdentity ? { sourceIdentity: meta.peerIdentity } : {}),
      })
      .then(
        (up) => {
          splice(stream, up);
        },
        () => stream.destroy(),
      );
  }

  private upgrade(req: http.IncomingMessage, sock: Duplex, head: Buffer): void {
    const meta = this.h1Meta.get(req.socket);
    const deny = (status: number, msg: string) => {
      sock.end(`HTTP/1.1 ${status} ${msg}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    };
    if (!meta) {
      deny(500, "Internal Server Error");
      return;
    }
    const svc = this.proxy.resolve(meta, req.headers.host);
    if (!svc) {
      deny(404, "Not Found");
      return;
    }
    const headers = req.headers as Record<string, string | string[] | undefined>;
    const path = (req.url ?? "/").split("?", 1)[0]!;
    if (!svc.authz.empty) {
      const d = svc.authz.evaluate({
        method: req.method ?? "GET",
        path,
        host: String(req.headers.host ?? ""),
        port: meta.dst.port,
        headers,
        ...(meta.peerIdentity ? { sourcePrincipal: meta.peerIdentity } : {}),
        ...(meta.sourceIp ? { sourceIp: meta.sourceIp } : {}),
      });
      if (!d.allow) {
        deny(403, "Forbidden");
        return;
      }
    }
    let cluster = clusterName(svc.svc.key, meta.dst.port);
    if (!svc.routes.empty) {
      const hit = matchRoute(svc.routes, {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers,
        grpc: false,
      });
      if (!hit) {
        deny(404, "Not Found");
        return;
      }
      const b = hit.route.backends[0];
      if (!b) {
        deny(500, "Internal Server Error");
        return;
      }
      cluster = b.cluster;
    }
    const live = this.state.cluster(cluster);
    const ep = live?.state.pick({});
    if (!ep) {
      deny(503, "Service Unavailable");
      return;
    }
    this.upstream.connect({ ip: ep.ip, port: ep.port }, { cluster }).then(
      (up) => {
        let headText = `${req.method} ${req.url} HTTP/1.1\r\n`;
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
        up.write(Buffer.from(`${headText}\r\n`, "latin1"));
        if (head.length) up.write(head);
        splice(sock, up);
      },
      () => {
        deny(503, "Service Unavailable");
      },
    );
  }

  /** Plain-TCP listener (tests, plain-text setups): the destination is the local address, unless given. */
  async listenTcp(opts: {
    port: number;
    host?: string;
    dst?: { ip: string; port: number };
  }): Promise<net.AddressInfo> {
    const server = net.createServer({ noDelay: true }, (s) => {
      this.serveStream(s, {
        dst: opts.dst ?? { ip: s.localAddress ?? "", port: s.localPort ?? 0 },
        ...(s.remoteAddress ? { sourceIp: s.remoteAddress } : {}),
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port, opts.host ?? "127.0.0.1", () => resolve());
    });
    this.tcpServers.add(server);
    return server.address() as net.AddressInfo;
  }

  async close(): Promise<void> {
    const closing = [...this.tcpServers].map((s) => new Promise<void>((r) => s.close(() => r())));
    this.tcpServers.clear();
    // Drain: idle HTTP/1.1 connections go now, busy ones after their
    // request; HTTP/2 sessions send GOAWAY and finish their streams; all
    // that remains after 5 s is cut.
    this.closing = true;
    for (const s of this.h2Sessions) s.close();
    for (const s of this.open) if (this.h1Meta.has(s) && !this.h1Active.get(s)) s.destroy();
    const deadline = setTimeout(() => {
      for (const s of this.open) s.destroy();
    }, 5000);
    await Promise.all(closing);
    clearTimeout(deadline);
  }
}

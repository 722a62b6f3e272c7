// How the waypoint reaches an endpoint. Production opens HBONE (CONNECT to
// podIP:15008 with :authority ip:port) through core/hbone's client; tests and
// plain-text setups use TcpUpstream.
import net from "node:net";
import type { Duplex } from "node:stream";

export interface UpstreamEndpoint {
  ip: string;
  port: number;
}

export interface UpstreamMeta {
  /** Cluster name (`ns/host:port`). */
  cluster: string;
  /** Identity of the original client, when known (for HBONE pooling keys and logs). */
  sourceIdentity?: string;
}

export interface Upstream {
  connect(endpoint: UpstreamEndpoint, meta: UpstreamMeta): Promise<Duplex>;
}

export class UpstreamConnectError extends Error {
  readonly code = "UPSTREAM_CONNECT";
  constructor(endpoint: UpstreamEndpoint, cause: Error) {
    super(`connect ${endpoint.ip}:${endpoint.port}: ${cause.message}`, { cause });
  }
}

/** Plain TCP to ip:port. */
export class TcpUpstream implements Upstream {
  constructor(private readonly connectTimeoutMs = 5000) {}
  connect(endpoint: UpstreamEndpoint): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: endpoint.ip, port: endpoint.port, noDelay: true });
      const timer = setTimeout(() => s.destroy(new Error("connect timeout")), this.connectTimeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        s.off("error", onError);
        resolve(s);
      });
      const onError = (e: Error) => {
        clearTimeout(timer);
        reject(new UpstreamConnectError(endpoint, e));
      };
      s.once("error", onError);
    });
  }
}

/**
 * Node's http machinery calls a few net.Socket methods on whatever stream it
 * gets; an HBONE stream lacks some. No-ops keep them working.
 */
export function socketLike(s: Duplex): Duplex {
  const x = s as Duplex & Record<string, unknown>;
  for (const m of ["setKeepAlive", "setNoDelay", "ref", "unref"])
    if (typeof x[m] !== "function") x[m] = () => x;
  if (typeof x.setTimeout !== "function") x.setTimeout = () => x;
  return s;
}

type Chunks = { chunk: Buffer | string; encoding: BufferEncoding }[];
const kPatched = Symbol("ambit.httpSocket");

/**
 * Makes a tunnel stream (an HBONE Http2Stream) fit for node:http, in place:
 * no wrapper stream, so each chunk crosses one stream layer, not two.
 *
 * - Node 20's HTTP/1.1 machinery corks and writes its head as a latin1
 *   string, so the stream's `_writev` gets strings and Buffers mixed; an
 *   Http2Stream's own writev then corrupts the first bytes (reproduced with
 *   plain node:http over node:http2). The batch is joined into one Buffer
 *   and written with `_write`, which handles it.
 * - `allowHalfOpen: false` makes it behave like a net.Socket for http.Agent:
 *   when the peer ends (a backend closing an idle keep-alive connection), it
 *   ends too, and so closes, and the agent drops it from its free list
 *   instead of sending the next request into a tunnel nobody reads.
 *
 * Plain sockets are returned as they are.
 */
export function httpSocket(s: Duplex, opts: { allowHalfOpen?: boolean } = {}): Duplex {
  if (s instanceof net.Socket) return s;
  const x = s as Duplex & {
    [kPatched]?: true;
    _write: (chunk: Buffer | string, enc: string, cb: (e?: Error | null) => void) => void;
    _writev?: (chunks: Chunks, cb: (e?: Error | null) => void) => void;
  };
  if (x[kPatched]) return s;
  x[kPatched] = true;
  x._writev = function (this: typeof x, chunks: Chunks, cb: (e?: Error | null) => void): void {
    if (chunks.length === 1) {
      const c = chunks[0]!;
      this._write(typeof c.chunk === "string" ? Buffer.from(c.chunk, c.encoding) : c.chunk, "buffer", cb);
      return;
    }
    const bufs: Buffer[] = new Array(chunks.length);
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      bufs[i] = typeof c.chunk === "string" ? Buffer.from(c.chunk, c.encoding) : c.chunk;
    }
    this._write(Buffer.concat(bufs), "buffer", cb);
  };
  // node:http's server ends its socket when the peer ends, even when the
  // response already ended it (Connection: close); Writable.end() then
  // builds an ERR_STREAM_ALREADY_FINISHED with its stack trace, once per
  // connection, for nothing. A repeated plain end() is a no-op here.
  const end = s.end;
  (x as { end: (...args: unknown[]) => Duplex }).end = function (this: Duplex, ...args: unknown[]) {
    if (args.length === 0 && this.writableEnded) return this;
    return (end as (...a: unknown[]) => Duplex).apply(this, args);
  };
  if (opts.allowHalfOpen === false)
    s.once("end", () => {
      if (!s.writableEnded) s.end();
    });
  return socketLike(s);
}

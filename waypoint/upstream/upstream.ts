// How the waypoint reaches an endpoint. Production opens HBONE (CONNECT to
// podIP:15008 with :authority ip:port) through core/hbone's client; tests and
// plain-text setups use TcpUpstream.
import net from "node:net";
import { Duplex } from "node:stream";

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

/**
 * A Duplex that hands only Buffers to `inner`, in one write per batch.
 * Node 20's HTTP/1.1 machinery writes its head as a latin1 string through
 * writev; on an Http2Stream (an HBONE tunnel) that corrupts the first bytes
 * of the response (reproduced with plain node:http over node:http2). Plain
 * sockets do not need it.
 *
 * `allowHalfOpen: false` makes it behave like a net.Socket for http.Agent:
 * when the peer ends (a backend closing an idle keep-alive connection), it
 * ends and closes too, so the agent drops it from its free list instead of
 * sending the next request into a tunnel nobody reads.
 */
export function bufferOnly(inner: Duplex, opts: { allowHalfOpen?: boolean } = {}): Duplex {
  if (inner instanceof net.Socket) return inner;
  const d = new Duplex({
    allowHalfOpen: opts.allowHalfOpen ?? true,
    read() {
      inner.resume();
    },
    writev(chunks, cb) {
      inner.write(
        chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk as Buffer)),
        cb,
      );
    },
    final(cb) {
      inner.end();
      cb();
    },
    destroy(err, cb) {
      inner.destroy(err ?? undefined);
      cb(err);
    },
  });
  inner.on("data", (c: Buffer) => {
    if (!d.push(c)) inner.pause();
  });
  inner.on("end", () => d.push(null));
  inner.on("error", (e) => d.destroy(e));
  inner.on("close", () => d.destroy());
  return socketLike(d);
}

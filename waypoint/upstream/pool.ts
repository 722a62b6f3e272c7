// Pooled upstream connections per cluster: HTTP/1.1 through a keep-alive
// http.Agent whose sockets come from the Upstream (one request per connection
// at a time, so pipelining never reaches a backend), HTTP/2 through one
// multiplexed session per endpoint.
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import type { ConnectionPoolPolicy } from "../../core/model/waypoint.js";
import {
  httpSocket,
  socketLike,
  type Upstream,
  type UpstreamEndpoint,
  type UpstreamMeta,
} from "./upstream.js";

const kRequests = Symbol("ambit.requests");

class UpstreamAgent extends http.Agent {
  constructor(
    private readonly upstream: Upstream,
    private readonly meta: UpstreamMeta,
    private readonly maxRequestsPerConnection: number,
  ) {
    // No socket caps here: the agent counts sockets only once they exist, so
    // ClusterState's circuit breaker bounds concurrent requests instead.
    super({ keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: 256, scheduling: "lifo" });
    (this as unknown as { keepSocketAlive: (s: Duplex) => boolean }).keepSocketAlive = this.retireOrKeep;
  }
  override createConnection(
    options: http.ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const ep = { ip: String(options.host), port: Number(options.port) };
    this.upstream.connect(ep, this.meta).then(
      (s) => callback?.(null, httpSocket(s, { allowHalfOpen: false })),
      (e: Error) => callback?.(e, undefined as unknown as Duplex),
    );
    return undefined;
  }
  // Node's Agent destroys a socket when keepSocketAlive returns false (the
  // typings say void): that is how maxRequestsPerConnection retires one.
  private readonly retireOrKeep = (socket: Duplex): boolean => {
    const s = socket as Duplex & { [kRequests]?: number };
    const n = (s[kRequests] ?? 0) + 1;
    s[kRequests] = n;
    if (this.maxRequestsPerConnection > 0 && n >= this.maxRequestsPerConnection) return false;
    http.Agent.prototype.keepSocketAlive.call(this, socket);
    return true;
  };
}

interface H2Entry {
  session: Promise<http2.ClientHttp2Session>;
  streams: number;
}

export class ClusterPool {
  private agent: UpstreamAgent;
  private readonly h2 = new Map<string, H2Entry>();
  private closed = false;

  constructor(
    private readonly upstream: Upstream,
    private readonly meta: UpstreamMeta,
    private policy: ConnectionPoolPolicy = {},
  ) {
    this.agent = this.makeAgent();
  }

  private makeAgent(): UpstreamAgent {
    return new UpstreamAgent(this.upstream, this.meta, this.policy.maxRequestsPerConnection ?? 0);
  }

  setPolicy(p: ConnectionPoolPolicy = {}): void {
    if (JSON.stringify(p) === JSON.stringify(this.policy)) return;
    this.policy = p;
    const old = this.agent;
    this.agent = this.makeAgent();
    // Free sockets close now; busy ones finish their request first.
    old.destroy();
  }

  /** The agent for HTTP/1.1 requests to any endpoint of the cluster. */
  h1Agent(): http.Agent {
    return this.agent;
  }

  /** A multiplexed HTTP/2 session to the endpoint (prior knowledge h2c over the upstream stream). */
  async h2Session(ep: UpstreamEndpoint): Promise<http2.ClientHttp2Session> {
    if (this.closed) throw new Error("pool closed");
    const key = `${ep.ip}|${ep.port}`;
    let e = this.h2.get(key);
    const max = this.policy.maxRequestsPerConnection ?? 0;
    if (e && max > 0 && e.streams >= max) {
      // Retire: in-flight streams finish, new ones get a fresh session.
      this.h2.delete(key);
      e.session.then(
        (s) => s.close(),
        () => {},
      );
      e = undefined;
    }
    if (!e) {
      const entry: H2Entry = { streams: 0, session: this.openH2(ep, key) };
      entry.session.catch(() => {
        if (this.h2.get(key) === entry) this.h2.delete(key);
      });
      this.h2.set(key, entry);
      e = entry;
    }
    e.streams++;
    return e.session;
  }

  private async openH2(ep: UpstreamEndpoint, key: string): Promise<http2.ClientHttp2Session> {
    const sock = socketLike(await this.upstream.connect(ep, this.meta));
    const authority = ep.ip.includes(":") ? `http://[${ep.ip}]:${ep.port}` : `http://${ep.ip}:${ep.port}`;
    const session = http2.connect(authority, {
      createConnection: () => sock as unknown as import("node:net").Socket,
      settings: { initialWindowSize: 4 << 20, enablePush: false },
    });
    const drop = () => {
      const cur = this.h2.get(key);
      if (cur)
        cur.session.then(
          (s) => s === session && this.h2.get(key) === cur && this.h2.delete(key),
          () => {},
        );
    };
    session.on("close", drop);
    session.on("goaway", drop);
    session.on("error", drop);
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => {
        session.off("error", reject);
        resolve();
      });
      session.once("error", reject);
    });
    try {
      session.setLocalWindowSize(16 << 20);
    } catch {
      // older peers: keep the default window
    }
    session.unref();
    return session;
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
    for (const e of this.h2.values())
      e.session.then(
        (s) => s.close(),
        () => {},
      );
    this.h2.clear();
  }
}

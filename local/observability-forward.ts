// A TCP forward between two network namespaces, served from this process:
// listens on an address in one namespace (or this process's own), and for
// each connection opens one to an address in another, then pipes bytes.
// `ambit up --observability` uses it to bring loopback-only metrics endpoints
// (a ztunnel's in its node's namespace, a waypoint's in its pod's) within
// Prometheus' reach in the control plane's namespace, and to offer
// Prometheus' and Jaeger's UIs on the host's loopback.
//
//   const f = await NetnsForward.start({ listen: { netns: cp, host: "127.0.0.1", port: 0 },
//                                        target: { netns: node, host: "127.0.0.1", port: 15020 } });
//   f.address   // "127.0.0.1:41234"
//   await f.close();
import { once } from "node:events";
import net from "node:net";
import { closeFd, connectInNetns, listenInNetns, NetnsSyscallError } from "../ztunnel/node-agent/native.js";

export interface ForwardEnd {
  /** /var/run/netns/... ; absent: this process's own namespace. */
  netns?: string;
  host: string;
  /** 0 on the listening side: any free port. */
  port: number;
}

export interface ForwardOptions {
  listen: ForwardEnd;
  target: ForwardEnd;
  /** Listening side only: when the port is taken, take any free one instead of failing. */
  anyPortIfTaken?: boolean;
}

export class NetnsForward {
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly target: ForwardEnd,
  ) {
    server.on("connection", (s) => this.accept(s));
  }

  static async start(opts: ForwardOptions): Promise<NetnsForward> {
    const server = net.createServer();
    try {
      await listen(server, opts.listen);
    } catch (e) {
      if (!(opts.anyPortIfTaken && addressInUse(e))) throw e;
      await listen(server, { ...opts.listen, port: 0 });
    }
    return new NetnsForward(server, opts.target);
  }

  /** host:port it listens on. */
  get address(): string {
    const a = this.server.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => client.destroy());
    client.pause();
    const t = this.target;
    const connecting = t.netns
      ? connectInNetns(t.netns, { host: t.host, port: t.port, timeoutMs: 5000 })
      : new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: t.host, port: t.port });
          s.once("connect", () => {
            s.off("error", reject);
            resolve(s);
          });
          s.once("error", reject);
        });
    connecting.then(
      (upstream) => {
        if (client.destroyed || this.closed) {
          upstream.destroy();
          return;
        }
        this.sockets.add(upstream);
        upstream.on("close", () => {
          this.sockets.delete(upstream);
          client.destroy();
        });
        upstream.on("error", () => upstream.destroy());
        client.on("close", () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        upstream.resume();
        client.resume();
      },
      // Target down (a restarting component): the client sees the connection close.
      () => client.destroy(),
    );
  }

  /** Stops listening and ends the connections in flight (they are scrapes and page loads). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = once(this.server, "close");
    this.server.close();
    for (const s of this.sockets) s.destroy();
    await closing;
  }
}

async function listen(server: net.Server, end: ForwardEnd): Promise<void> {
  if (!end.netns) {
    server.listen(end.port, end.host);
  } else {
    const fd = listenInNetns(end.netns, { host: end.host, port: end.port });
    server.once("error", () => closeFd(fd));
    server.listen({ fd });
  }
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([e]) => Promise.reject(e as Error)),
  ]);
}

function addressInUse(e: unknown): boolean {
  if (e instanceof NetnsSyscallError) return e.errnoCode === "EADDRINUSE";
  return (e as NodeJS.ErrnoException).code === "EADDRINUSE";
}

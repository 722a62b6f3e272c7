// The node agent's Unix socket for the CNI plugin (ambit-cni), ZDS-like: the
// plugin hands over a new pod's network namespace (path) and identity, the
// handler decides and captures, and the ack goes back only then, so an
// enrolled pod's containers start with its traffic already captured.
// One request per connection (the plugin's), but several are served.
//
// Upgrades: a new ztunnel binds the path again (the old socket file is
// replaced, the old process keeps serving what it accepted); on close a
// ztunnel removes the socket file only if it is still its own.
import { chmod, mkdir, rename, stat, unlink } from "node:fs/promises";
import net from "node:net";
import { dirname } from "node:path";
import { type Logger, logger } from "../../core/telemetry/logger.js";
import { counter } from "../../core/telemetry/metrics.js";
import { type CniAdd, type CniDel, decodeCniRequest, encodeCniAck, FrameReader, frame } from "./zds-codec.js";

export interface ZdsHandler {
  /** Decide and capture; resolves with whether the pod is captured now. A rejection is acked as an error (the ADD fails). */
  add(pod: CniAdd): Promise<{ captured: boolean }>;
  /** Stop capturing (when the sandbox is the one that was added). */
  del(pod: CniDel): Promise<void>;
}

export interface ZdsServerOptions {
  socketPath: string;
  handler: ZdsHandler;
  log?: Logger;
}

const requests = () =>
  counter("ambit_cni_requests_total", "Requests of the CNI plugin to the node agent", ["kind", "outcome"]);

export class ZdsServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly log: Logger;
  private inode: number | undefined;

  constructor(private readonly opts: ZdsServerOptions) {
    this.log = opts.log ?? logger("ztunnel.zds");
    this.server = net.createServer((s) => this.onConnection(s));
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  async start(): Promise<void> {
    const path = this.opts.socketPath;
    await mkdir(dirname(path), { recursive: true });
    // Bound under a temporary name, then renamed over the path: that takes the
    // path over from a previous ztunnel (or one still draining) atomically, and
    // libuv's unlink of the bound name on close can never hit a successor's socket.
    const bound = `${path}.${process.pid}.tmp`;
    await unlink(bound).catch(() => {});
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(bound, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    // Only root (the runtime running the plugin) may hand pods over.
    await chmod(bound, 0o600);
    await rename(bound, path);
    this.inode = (await stat(path)).ino;
    this.log.info({ socket: path }, "CNI socket listening");
  }

  private onConnection(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => {});
    const reader = new FrameReader();
    sock.on("data", (chunk) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.reply(sock, { error: (e as Error).message }, "bad-frame");
        sock.end();
        return;
      }
      for (const f of frames) this.track(this.serve(sock, f));
    });
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    p.finally(() => this.inFlight.delete(p));
  }

  private async serve(sock: net.Socket, msg: Buffer): Promise<void> {
    let decoded: ReturnType<typeof decodeCniRequest>;
    try {
      decoded = decodeCniRequest(msg);
    } catch (e) {
      this.reply(sock, { error: (e as Error).message }, "invalid");
      return;
    }
    if (decoded.kind === "add") {
      const pod = decoded.add;
      try {
        const { captured } = await this.opts.handler.add(pod);
        this.reply(sock, { captured }, captured ? "add-captured" : "add-not-enrolled");
      } catch (e) {
        this.log.error({ pod: pod.key, err: (e as Error).message }, "CNI add failed");
        this.reply(sock, { error: (e as Error).message }, "add-error");
      }
    } else {
      const pod = decoded.del;
      try {
        await this.opts.handler.del(pod);
        this.reply(sock, {}, "del");
      } catch (e) {
        this.log.warn({ pod: pod.key, err: (e as Error).message }, "CNI del failed");
        this.reply(sock, { error: (e as Error).message }, "del-error");
      }
    }
  }

  private reply(sock: net.Socket, ack: { error?: string; captured?: boolean }, outcome: string): void {
    const [kind] = outcome.split("-");
    requests().inc({ kind: kind ?? outcome, outcome });
    if (!sock.destroyed) sock.write(frame(Buffer.from(encodeCniAck(ack))));
  }

  /** Stops accepting, lets requests in flight finish, removes the socket file if it is still ours. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.allSettled([...this.inFlight]);
    for (const s of this.sockets) s.end();
    try {
      if (this.inode !== undefined && (await stat(this.opts.socketPath)).ino === this.inode)
        await unlink(this.opts.socketPath);
    } catch {
      // Gone already.
    }
  }
}

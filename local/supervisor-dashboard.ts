// `ambit up`'s way to the dashboard from the host. The controller runs in the
// control plane's network namespace, where the host's browser cannot reach
// it; it also serves the dashboard on a Unix socket (a path crosses network
// namespaces, a port does not), and this forwards the host's
// 127.0.0.1:15080 to that socket byte for byte, so the page and its event
// stream work unchanged. A controller restart only breaks the connections
// open at that moment: the page reconnects through the same port.
import net from "node:net";
import { logger } from "../core/telemetry/logger.js";

const log = logger("supervisor.dashboard");

export const DEFAULT_DASHBOARD_HOST_PORT = 15080;

export interface DashboardForwardOptions {
  /** The controller's dashboard socket. */
  socket: string;
  /** Host address to listen on (127.0.0.1 unless configured). */
  host: string;
  /** Host port; when taken (another mesh has it), any free port. */
  port: number;
}

/** Where the dashboard forward listens, from `ambit up`'s environment (AMBIT_DASHBOARD_HOST / _PORT). */
export function dashboardForwardAddress(env: NodeJS.ProcessEnv = process.env): {
  host: string;
  port: number;
} {
  const port = Number(env.AMBIT_DASHBOARD_PORT ?? DEFAULT_DASHBOARD_HOST_PORT);
  return {
    host: env.AMBIT_DASHBOARD_HOST ?? "127.0.0.1",
    port: Number.isInteger(port) && port >= 0 && port < 65536 ? port : DEFAULT_DASHBOARD_HOST_PORT,
  };
}

export class DashboardForward {
  private server?: net.Server;
  private readonly open = new Set<net.Socket>();
  url = "";

  constructor(private readonly opts: DashboardForwardOptions) {}

  /** Listens (falling back to a free port when the configured one is taken); resolves with the URL. */
  async start(): Promise<string> {
    const s = net.createServer((client) => this.forward(client));
    const listen = (port: number) =>
      new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        s.once("error", onError);
        s.listen(port, this.opts.host, () => {
          s.off("error", onError);
          resolve();
        });
      });
    try {
      await listen(this.opts.port);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || this.opts.port === 0) throw e;
      log.info({ port: this.opts.port }, "dashboard port taken (another mesh?): using a free one");
      await listen(0);
    }
    this.server = s;
    const { port } = s.address() as net.AddressInfo;
    const host = this.opts.host.includes(":") ? `[${this.opts.host}]` : this.opts.host;
    this.url = `http://${host}:${port}/`;
    return this.url;
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect(this.opts.socket);
    this.open.add(client);
    this.open.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      this.open.delete(client);
      this.open.delete(upstream);
    };
    // The controller is away (restarting): the browser sees a reset and retries.
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const c of this.open) c.destroy();
    this.open.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

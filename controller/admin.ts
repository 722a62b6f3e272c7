// The controller's admin HTTP: Prometheus metrics, the model it serves, the
// connected proxies and their ACK state, and rejected objects. Bound to
// localhost by default, and to a Unix socket so the CLI reaches it from any
// network namespace.
import { rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { registry } from "../core/telemetry/metrics.js";
import type { ControllerApp } from "./app.js";
import { type DashboardServer, startDashboard } from "./dashboard/server.js";

export class AdminServer {
  private servers: http.Server[] = [];
  /** The dashboard (its own port, AMBIT_DASHBOARD_PORT, default 127.0.0.1:15080); see controller/dashboard/. */
  dashboard?: DashboardServer;
  constructor(private readonly app: ControllerApp) {}

  private handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://admin");
    const json = (v: unknown, code = 200) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(v, null, 2));
    };
    const view = this.app.current();
    switch (url.pathname) {
      case "/metrics":
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(await registry.metrics());
        return;
      case "/ready":
        res.writeHead(200).end("ok\n");
        return;
      case "/debug/model":
        return json({
          workloads: view.workloads,
          services: view.services,
          policies: view.policies,
          translatedAt: view.translatedAt,
        });
      case "/debug/errors":
        return json({
          errors: view.errors.map((e) => e.summary()),
          warnings: view.warnings.map((e) => e.summary()),
        });
      case "/debug/status":
        return json(view.statuses);
      case "/debug/proxies":
        return json(this.app.connections());
      case "/debug/root-cert":
        res.writeHead(200, { "content-type": "application/x-pem-file" });
        res.end(this.app.rootPem() ?? "");
        return;
      default:
        json(
          {
            error: "not found",
            paths: [
              "/metrics",
              "/ready",
              "/debug/model",
              "/debug/errors",
              "/debug/status",
              "/debug/proxies",
              "/debug/root-cert",
            ],
          },
          404,
        );
    }
  };

  /** Listens on host:port (port -1: not at all) and on the socket path if given. Returns the TCP port. */
  async start(host: string, port: number, socketPath?: string): Promise<number> {
    let bound = 0;
    if (port >= 0) {
      const s = http.createServer((q, r) => void this.handle(q, r));
      await new Promise<void>((resolve, reject) =>
        s.once("error", reject).listen(port, host, () => resolve()),
      );
      bound = (s.address() as AddressInfo).port;
      this.servers.push(s);
    }
    if (socketPath) {
      rmSync(socketPath, { force: true });
      const s = http.createServer((q, r) => void this.handle(q, r));
      await new Promise<void>((resolve, reject) =>
        s.once("error", reject).listen(socketPath, () => resolve()),
      );
      this.servers.push(s);
    }
    this.dashboard = await startDashboard(this.app);
    return bound;
  }

  /**
   * Prometheus metrics alone on host:port: what a scraper off this host needs,
   * without exposing the model, proxies or root certificate the debug paths
   * show. Returns the bound port.
   */
  async startMetrics(host: string, port: number): Promise<number> {
    const s = http.createServer((req, res) => {
      const path = (req.url ?? "/").split("?", 1)[0];
      if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: only /metrics is served here\n");
        return;
      }
      void registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => s.once("error", reject).listen(port, host, () => resolve()));
    this.servers.push(s);
    return (s.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await this.dashboard?.close();
    await Promise.all(
      this.servers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((r) => s.close(() => r()));
      }),
    );
  }
}

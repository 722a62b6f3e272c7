// The ztunnel's admin surfaces: 15000 admin (config dump, certificates, log
// level), 15020 Prometheus metrics, 15021 readiness. They bind to localhost
// in the node's namespace by default (pods cannot reach them), and the admin
// endpoints are also served on a Unix socket for the CLI.
import { renameSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import type { LevelWithSilent } from "pino";
import { levels, logger, setLevel } from "../core/telemetry/logger.js";
import { registry } from "../core/telemetry/metrics.js";
import type { ZtunnelApp } from "./app.js";
import { memoryAdmission } from "./proxy/memory-pressure.js";

const log = logger("ztunnel.admin");

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export class ZtunnelAdmin {
  private servers: http.Server[] = [];
  private readinessServer: http.Server | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private closed = false;
  private socket: { path: string; ino: number } | undefined;
  constructor(private readonly app: ZtunnelApp) {}

  /** Everything this ztunnel holds now, as plain JSON. */
  configDump(): unknown {
    return {
      node: this.app.cfg.nodeName,
      ready: this.app.isReady(),
      xds: this.app.xds.state(),
      state: this.app.state.dump(),
      enrolledPods: this.app.agent.pods(),
      certificates: this.app.certs.list(),
      connections: this.app.activeConnections(),
      hboneSessions: this.app.hboneSessions(),
    };
  }

  private admin = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://admin");
    const json = (v: unknown, code = 200) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(v, null, 2));
    };
    switch (url.pathname) {
      case "/config_dump":
        return json(this.configDump());
      case "/certs":
        return json(this.app.certs.list());
      case "/logging": {
        const level = url.searchParams.get("level");
        if (level) {
          if (!LEVELS.has(level)) return json({ error: `unknown level ${level}` }, 400);
          setLevel(level as LevelWithSilent, url.searchParams.get("component") ?? undefined);
        }
        return json(levels());
      }
      case "/memory": {
        // Memory admission's state; ?limit_mb=N changes the limit at run time (0: off).
        const limit = url.searchParams.get("limit_mb");
        if (limit !== null) {
          const n = Number(limit);
          if (limit === "" || !Number.isFinite(n) || n < 0)
            return json({ error: `limit_mb: '${limit}' is not a number of megabytes` }, 400);
          memoryAdmission.setLimitMb(n);
        }
        return json(memoryAdmission.status());
      }
      case "/metrics":
        return this.metrics(req, res);
      case "/ready":
      case "/healthz/ready":
        return this.readiness(req, res);
      default:
        return json(
          {
            error: "not found",
            paths: ["/config_dump", "/certs", "/logging?level=", "/memory?limit_mb=", "/metrics", "/ready"],
          },
          404,
        );
    }
  };

  private metrics = async (_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    res.writeHead(200, { "content-type": registry.contentType });
    res.end(await registry.metrics());
  };

  private readiness = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    const ok = this.app.isReady();
    res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
    res.end(ok ? "ready\n" : "not ready\n");
  };

  async start(): Promise<void> {
    const { adminHost, adminPort, metricsHost, metricsPort, readinessPort, adminSocket } = this.app.cfg;
    const serve = async (handler: http.RequestListener, where: number | string, host = adminHost) => {
      if (typeof where === "number" && where < 0) return;
      const s = http.createServer((q, r) => void handler(q, r));
      if (typeof where === "string") rmSync(where, { force: true });
      const listen = () =>
        new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => {
            s.off("listening", onListening);
            reject(err);
          };
          const onListening = () => {
            s.off("error", onError);
            resolve();
          };
          s.once("error", onError);
          s.once("listening", onListening);
          if (typeof where === "string") s.listen(where);
          else s.listen(where, host);
        });
      try {
        await listen();
      } catch (err) {
        // During an upgrade the draining predecessor on this node still holds
        // the port until it exits: take it over then, do not fail the start.
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || typeof where === "string") throw err;
        log.warn(
          { port: where, host },
          "admin port in use (a draining predecessor?): retrying until it is free",
        );
        const retry = (): void => {
          if (this.closed || !this.servers.includes(s)) return;
          listen().then(
            () => log.info({ port: where, host }, "admin port taken over"),
            () => {
              this.retryTimers.add(setTimeout(retry, 1000).unref());
            },
          );
        };
        this.retryTimers.add(setTimeout(retry, 1000).unref());
      }
      this.servers.push(s);
    };
    await serve(this.admin, adminPort);
    await serve(this.metrics, metricsPort, metricsHost ?? adminHost);
    await serve(this.readiness, readinessPort);
    if (readinessPort >= 0) this.readinessServer = this.servers[this.servers.length - 1];
    if (adminSocket) {
      await serve(this.admin, adminSocket);
      this.socket = { path: adminSocket, ino: statSync(adminSocket).ino };
    }
  }

  /**
   * Gives the readiness port up at the start of a drain. During a surge
   * rollout the successor retries this port until it is free; the kubelet's
   * probe must reach the successor (and its own readiness), not the draining
   * process, which would keep answering for a pod that is not serving yet.
   */
  async releaseReadiness(): Promise<void> {
    const s = this.readinessServer;
    this.readinessServer = undefined;
    if (!s) return;
    this.servers = this.servers.filter((x) => x !== s);
    if (!s.listening) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.retryTimers) clearTimeout(t);
    // Closing a Unix-socket server unlinks its path, which a successor
    // (an upgrade) has re-bound by now: keep the successor's file aside
    // while ours closes (a bound socket file works under any name).
    const sock = this.socket;
    const now = sock ? statSync(sock.path, { throwIfNoEntry: false }) : undefined;
    const aside = sock && now && now.ino !== sock.ino ? `${sock.path}.successor` : undefined;
    if (sock && aside) renameSync(sock.path, aside);
    const closed = Promise.all(
      this.servers.map((s) => {
        if (!s.listening) return Promise.resolve();
        s.closeAllConnections();
        return new Promise<void>((r) => s.close(() => r()));
      }),
    );
    // server.close() unlinked synchronously: the successor's socket goes back.
    if (sock && aside) renameSync(aside, sock.path);
    await closed;
  }
}

// `ambit dashboard`'s server: a read-only page on its own port (default
// 127.0.0.1:15080), the service graph from scraping every connected proxy's
// /metrics (plus configured URLs and the controller's own registry), per
// workload details from the model, and config health (NACKs, rejected
// objects). Live updates by server-sent events; nothing here writes.
import { readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { policyKey } from "../../core/model/types.js";
import { logger } from "../../core/telemetry/logger.js";
import { registry } from "../../core/telemetry/metrics.js";
import type { ControllerView } from "../app.js";
import type { ProxyConnectionInfo } from "../push/connection-info.js";
import {
  buildGraph,
  certExpiries,
  DASHBOARD_METRICS,
  type EdgeTotals,
  edgeTotals,
  type Graph,
  parsePromText,
  type Sample,
} from "./graph.js";
import { DASHBOARD_PAGE } from "./page.js";

const log = logger("controller.dashboard");

export const DEFAULT_DASHBOARD_PORT = 15080;

/** What the dashboard reads from the controller. */
export interface DashboardSource {
  current(): ControllerView;
  connections(): ProxyConnectionInfo[];
}

export interface DashboardOptions {
  host: string;
  /** 0: any free port; -1: no dashboard. */
  port: number;
  /**
   * Also served on this Unix socket: `ambit up` runs the controller in the
   * control plane's network namespace and forwards the host's
   * 127.0.0.1:15080 to this file (a path crosses namespaces, a port does not).
   */
  socket?: string;
  /** Extra /metrics URLs scraped besides every connected proxy's. */
  targets: string[];
  /** Port of /metrics on connected proxies (ztunnel and waypoint: 15020). 0: don't scrape proxies. */
  proxyMetricsPort: number;
  scrapeIntervalMs: number;
  /** Rates and error ratios are over this window (a denied call stays visible for it). */
  rateWindowMs: number;
}

/** Dashboard settings from the environment (the controller's flags stay the lead's). */
export function dashboardOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DashboardOptions {
  const port =
    env.AMBIT_DASHBOARD_PORT === undefined ? DEFAULT_DASHBOARD_PORT : Number(env.AMBIT_DASHBOARD_PORT);
  return {
    host: env.AMBIT_DASHBOARD_HOST ?? "127.0.0.1",
    port: Number.isInteger(port) ? port : DEFAULT_DASHBOARD_PORT,
    ...(env.AMBIT_DASHBOARD_SOCKET ? { socket: env.AMBIT_DASHBOARD_SOCKET } : {}),
    targets: (env.AMBIT_DASHBOARD_TARGETS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    proxyMetricsPort: Number(env.AMBIT_DASHBOARD_PROXY_METRICS_PORT ?? 15020),
    scrapeIntervalMs: Number(env.AMBIT_DASHBOARD_SCRAPE_MS ?? 2000),
    rateWindowMs: Number(env.AMBIT_DASHBOARD_RATE_WINDOW_MS ?? 30_000),
  };
}

/** The /metrics URL of a connected proxy, from its gRPC peer address ("ipv4:10.0.0.2:5555"). */
export function proxyMetricsUrl(peer: string, port: number): string | undefined {
  const m = /^(?:ipv4:)?(\d+\.\d+\.\d+\.\d+):\d+$/.exec(peer) ?? /^ipv6:\[([^\]]+)\]:\d+$/.exec(peer);
  if (!m) return undefined;
  const host = m[1]!.includes(":") ? `[${m[1]}]` : m[1]!;
  return `http://${host}:${port}/metrics`;
}

let cytoscapeJs: string | undefined;
function cytoscapeSource(): string {
  if (!cytoscapeJs) {
    const require = createRequire(import.meta.url);
    cytoscapeJs = readFileSync(require.resolve("cytoscape/dist/cytoscape.min.js"), "utf8");
  }
  return cytoscapeJs;
}

export class DashboardServer {
  private server?: http.Server;
  private socketServer?: http.Server;
  /** identity → when its certificate expires, as the proxies reported at the last scrape. */
  private certs = new Map<string, Date>();
  private timer?: NodeJS.Timeout;
  /** Recent scrapes, oldest first: rates are over the window, not one scrape interval. */
  private history: { totals: Map<string, EdgeTotals>; at: number }[] = [];
  private graph: Graph = { nodes: [], edges: [], links: [], at: new Date(0).toISOString() };
  private readonly sse = new Set<http.ServerResponse>();
  private scraping = false;
  private targetsSeen: { url: string; ok: boolean; error?: string }[] = [];
  port = 0;

  constructor(
    private readonly src: DashboardSource,
    private readonly opts: DashboardOptions,
  ) {}

  async start(): Promise<number> {
    const s = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) =>
      s.once("error", reject).listen(this.opts.port, this.opts.host, () => resolve()),
    );
    this.server = s;
    this.port = (s.address() as AddressInfo).port;
    const path = this.opts.socket;
    if (path) {
      // A previous controller's socket file (it was killed) would refuse the bind.
      rmSync(path, { force: true });
      const u = http.createServer((req, res) => this.handle(req, res));
      await new Promise<void>((resolve, reject) => u.once("error", reject).listen(path, () => resolve()));
      this.socketServer = u;
    }
    await this.scrape();
    this.timer = setInterval(() => void this.scrape(), this.opts.scrapeIntervalMs);
    this.timer.unref();
    log.info({ url: `http://${this.opts.host}:${this.port}/` }, "dashboard listening");
    return this.port;
  }

  /** The scrape targets now: every connected proxy plus the configured URLs. */
  targets(): string[] {
    const urls = new Set(this.opts.targets);
    if (this.opts.proxyMetricsPort > 0)
      for (const c of this.src.connections()) {
        const u = proxyMetricsUrl(c.peer, this.opts.proxyMetricsPort);
        if (u) urls.add(u);
      }
    return [...urls];
  }

  /** One round: scrape all targets (bounded time), rebuild the graph, push it to open pages. */
  async scrape(): Promise<Graph> {
    if (this.scraping) return this.graph;
    this.scraping = true;
    try {
      const only = (n: string) => DASHBOARD_METRICS.has(n);
      const samples: Sample[] = parsePromText(await registry.metrics(), only);
      const seen: typeof this.targetsSeen = [];
      await Promise.all(
        this.targets().map(async (url) => {
          try {
            const r = await fetch(url, {
              signal: AbortSignal.timeout(Math.min(1500, this.opts.scrapeIntervalMs)),
            });
            if (!r.ok) throw new Error(`HTTP ${r.status}`);
            samples.push(...parsePromText(await r.text(), only));
            seen.push({ url, ok: true });
          } catch (e) {
            seen.push({ url, ok: false, error: (e as Error).message });
          }
        }),
      );
      this.targetsSeen = seen.sort((a, b) => a.url.localeCompare(b.url));
      const now = Date.now();
      const totals = edgeTotals(samples);
      this.certs = new Map(
        [...certExpiries(samples)].map(([id, seconds]) => [id, new Date(now + seconds * 1000)]),
      );
      const view = this.src.current();
      while (this.history.length > 1 && this.history[0]!.at < now - this.opts.rateWindowMs)
        this.history.shift();
      // Per edge, the oldest scrape in the window that saw it from the same
      // reporter: a proxy scraped for the first time a moment ago (after a
      // controller restart, say) gets a rate once it has two scrapes, never
      // a burst of its whole history.
      const base = new Map<string, EdgeTotals>();
      const since = new Map<string, number>();
      for (const h of this.history)
        for (const [key, e] of h.totals)
          if (!base.has(key) && e.reporter === totals.get(key)?.reporter) {
            base.set(key, e);
            since.set(key, (now - h.at) / 1000);
          }
      this.graph = buildGraph(view, totals, base, (key) => since.get(key) ?? 0);
      this.history.push({ totals, at: now });
      const data = `event: graph\ndata: ${JSON.stringify(this.graph)}\n\n`;
      for (const res of this.sse) res.write(data);
      return this.graph;
    } finally {
      this.scraping = false;
    }
  }

  /** Config health: rejected objects with object and field, proxies' NACKs, scrape targets. */
  health() {
    const view = this.src.current();
    const nacks = [];
    for (const c of this.src.connections())
      for (const t of c.types)
        if (t.nacks > 0 || t.lastNack)
          nacks.push({ proxy: c.nodeId, typeUrl: t.typeUrl, nacks: t.nacks, lastNack: t.lastNack });
    return {
      rejected: view.errors.map((e) => e.summary()),
      warnings: view.warnings.map((e) => e.summary()),
      nacks,
      proxies: this.src.connections().map((c) => ({
        nodeId: c.nodeId,
        peer: c.peer,
        inSync: c.types.every((t) => t.inSync),
      })),
      targets: this.targetsSeen,
      translatedAt: view.translatedAt,
    };
  }

  /** Everything known about one workload (`ns/workloadName`). */
  workload(ns: string, name: string) {
    const view = this.src.current();
    const pods = view.workloads.filter(
      (w) => w.namespace === ns && (w.workloadName === name || w.name === name),
    );
    if (!pods.length) return undefined;
    const serviceKeys = new Set(pods.flatMap((p) => Object.keys(p.services)));
    const services = view.services.filter((s) => serviceKeys.has(s.key));
    const selected = new Set(pods.flatMap((p) => p.authorizationPolicies));
    const policies = view.policies
      .filter(
        (p) =>
          p.scope === "global" ||
          (p.scope === "namespace" && p.namespace === ns) ||
          (p.scope === "workload" && selected.has(policyKey(p))),
      )
      .map((p) => ({
        name: policyKey(p),
        scope: p.scope,
        action: p.action,
        rules: p.rules.length,
        dryRun: p.dryRun,
      }));
    const svcNames = new Set(services.map((s) => s.name));
    const waypoints = new Set(
      [...pods, ...services].flatMap((x) => (x.waypoint ? [JSON.stringify(x.waypoint)] : [])),
    );
    const statuses = view.statuses.filter(
      (s) =>
        s.namespace === ns &&
        (s.kind === "Gateway" ||
          JSON.stringify(s.status).includes(`"${name}"`) ||
          [...svcNames].some((n) => s.name === n || JSON.stringify(s.status).includes(`"${n}"`))),
    );
    // Routes whose parentRefs name one of its Services apply to it.
    const routes = statuses.filter((s) => s.kind === "HTTPRoute" || s.kind === "GRPCRoute");
    return {
      namespace: ns,
      name,
      pods: pods.map((p) => ({
        name: p.name,
        node: p.node,
        ips: p.ips,
        identity: `spiffe://${p.trustDomain}/ns/${p.namespace}/sa/${p.serviceAccount}`,
        enrolled: p.tunnel === "hbone",
        healthy: p.healthy,
        mtlsMode: p.mtlsMode ?? "permissive",
        certificate: this.certificate(`spiffe://${p.trustDomain}/ns/${p.namespace}/sa/${p.serviceAccount}`),
      })),
      routes: routes.map((r) => ({ kind: r.kind, name: `${r.namespace}/${r.name}` })),
      services: services.map((s) => ({ name: s.name, hostname: s.hostname, vips: s.vips })),
      waypoints: [...waypoints].map((w) => JSON.parse(w) as unknown),
      policies,
      conditions: statuses,
      rejected: view.errors
        .filter(
          (e) => e.object.namespace === ns && (e.object.name === name || svcNames.has(e.object.name ?? "")),
        )
        .map((e) => ({ code: e.code, message: e.message, object: e.object, field: e.field })),
    };
  }

  /** The certificate of an identity as its ztunnel reports it (absent: not issued, or not scraped yet). */
  private certificate(identity: string): { expiresAt: string; secondsLeft: number } | undefined {
    const at = this.certs.get(identity);
    if (!at) return undefined;
    return { expiresAt: at.toISOString(), secondsLeft: Math.round((at.getTime() - Date.now()) / 1000) };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET" }).end("read-only\n");
      return;
    }
    const url = new URL(req.url ?? "/", "http://dashboard");
    const json = (v: unknown, code = 200) => {
      res.writeHead(code, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(v));
    };
    switch (url.pathname) {
      case "/":
      case "/index.html":
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(DASHBOARD_PAGE);
        return;
      case "/cytoscape.min.js":
        res
          .writeHead(200, { "content-type": "text/javascript", "cache-control": "max-age=3600" })
          .end(cytoscapeSource());
        return;
      case "/api/graph":
        json(this.graph);
        return;
      case "/api/health":
        json(this.health());
        return;
      case "/api/workload": {
        const w = this.workload(url.searchParams.get("ns") ?? "", url.searchParams.get("name") ?? "");
        if (w) json(w);
        else json({ error: "no such workload" }, 404);
        return;
      }
      case "/api/events": {
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-store",
          connection: "keep-alive",
        });
        res.write(`retry: 2000\nevent: graph\ndata: ${JSON.stringify(this.graph)}\n\n`);
        this.sse.add(res);
        req.once("close", () => this.sse.delete(res));
        return;
      }
      default:
        json(
          {
            error: "not found",
            paths: ["/", "/api/graph", "/api/health", "/api/workload?ns=&name=", "/api/events"],
          },
          404,
        );
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const r of this.sse) r.end();
    this.sse.clear();
    await Promise.all(
      [this.server, this.socketServer].map(async (s) => {
        if (!s) return;
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }),
    );
  }
}

/**
 * Starts the dashboard next to the admin server, as configured by the
 * environment; a port already taken is logged, never fatal to the controller.
 */
export async function startDashboard(src: DashboardSource): Promise<DashboardServer | undefined> {
  const opts = dashboardOptionsFromEnv();
  if (opts.port < 0) return undefined;
  const d = new DashboardServer(src, opts);
  try {
    await d.start();
    return d;
  } catch (e) {
    log.warn({ err: (e as Error).message, port: opts.port }, "dashboard not started");
    await d.close();
    return undefined;
  }
}

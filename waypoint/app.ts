// The waypoint process: one wiring point. Certificates from the CA (its own
// identity), configuration from xDS (ambit.v1.WaypointService), HBONE in on
// podIp:15008 and out to endpoints, admin (config dump), metrics, readiness.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { HboneClient } from "../core/hbone/client.js";
import { HboneServer } from "../core/hbone/server.js";
import { logger } from "../core/telemetry/logger.js";
import { enableProcessMetrics, registry } from "../core/telemetry/metrics.js";
import { DeltaAdsClient } from "../core/xds/client.js";
import { CaClient } from "../ztunnel/certs/ca-client.js";
import { CertManager } from "../ztunnel/certs/manager.js";
import type { WaypointConfig } from "./config.js";
import { connMetaOf } from "./proxy.js";
import { RequestTracer } from "./tracing.js";
import { HboneUpstream } from "./upstream/hbone-upstream.js";
import { Waypoint } from "./waypoint.js";
import { WAYPOINT_SERVICE_TYPE_URL, waypointServiceHandler } from "./xds-handler.js";

const log = logger("waypoint");

export class WaypointApp {
  readonly waypoint: Waypoint;
  readonly identity: string;
  private readonly certs: CertManager;
  private readonly hboneServer: HboneServer;
  private readonly hbone: HboneClient;
  private readonly xds: DeltaAdsClient;
  private readonly servers: http.Server[] = [];
  private ready = false;
  private readonly tracer?: RequestTracer;

  constructor(readonly cfg: WaypointConfig) {
    this.identity = `spiffe://${cfg.trustDomain}/ns/${cfg.namespace}/sa/${cfg.serviceAccount}`;
    const rootPem = cfg.controllerRootFile ? readFileSync(cfg.controllerRootFile, "utf8") : undefined;
    const token = cfg.tokenFile ? async () => (await readFile(cfg.tokenFile!, "utf8")).trim() : undefined;
    const ca = new CaClient({
      address: cfg.caAddress,
      ...(token ? { token } : {}),
      ...(rootPem ? { tls: { rootsPem: [rootPem], serverName: "ambit-controller" } } : {}),
      ttlSeconds: cfg.certTtlSeconds,
    });
    this.certs = new CertManager({ client: ca, trustDomain: cfg.trustDomain });
    const hbone = new HboneClient({ certs: { get: (id) => this.certs.get(id) } });
    this.hbone = hbone;
    if (cfg.otlpEndpoint)
      this.tracer = new RequestTracer({
        endpoint: cfg.otlpEndpoint,
        serviceName: "ambit-waypoint",
        resource: { "k8s.namespace.name": cfg.namespace, "ambit.gateway": `${cfg.namespace}/${cfg.name}` },
      });
    this.waypoint = new Waypoint({
      accessLogSample: cfg.accessLogSample,
      ...(this.tracer ? { tracer: this.tracer } : {}),
      upstream: (state) =>
        new HboneUpstream({
          client: hbone,
          identity: this.identity,
          ip: cfg.podIp,
          identityOf: (ip, port) => state.identityOf(ip, port),
        }),
    });
    this.hboneServer = new HboneServer({
      handler: (stream, info) => {
        stream.respond({ ":status": 200 });
        this.waypoint.serveStream(stream, connMetaOf(info));
      },
    });
    this.xds = new DeltaAdsClient({
      address: cfg.xdsAddress,
      ...(rootPem ? { credentials: grpc.credentials.createSsl(Buffer.from(rootPem)) } : {}),
      node: {
        id: `waypoint~${cfg.podIp}~${cfg.name}.${cfg.namespace}~${cfg.namespace}.svc.cluster.local`,
        metadata: {
          "ambit.dev/role": "waypoint",
          "ambit.dev/gateway": `${cfg.namespace}/${cfg.name}`,
          NAMESPACE: cfg.namespace,
        },
      },
      handlers: [
        {
          typeUrl: WAYPOINT_SERVICE_TYPE_URL,
          apply: waypointServiceHandler(this.waypoint, `${cfg.namespace}/${cfg.name}`),
        },
      ],
    });
  }

  private serve(port: number, handler: http.RequestListener): Promise<void> {
    if (!port) return Promise.resolve();
    const s = http.createServer(handler);
    this.servers.push(s);
    return new Promise((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, this.cfg.adminHost, () => resolve());
    });
  }

  async start(): Promise<void> {
    enableProcessMetrics();
    this.certs.start();
    await this.tracer?.start();
    await this.waypoint.start();
    await this.serve(this.cfg.metricsPort, (_req, res) => {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        () => res.writeHead(500).end(),
      );
    });
    await this.serve(this.cfg.readinessPort, (_req, res) =>
      res.writeHead(this.ready ? 200 : 503).end(this.ready ? "ready\n" : "not ready\n"),
    );
    await this.serve(this.cfg.adminPort, (req, res) => {
      if (req.url?.startsWith("/config_dump")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify(
            {
              gateway: `${this.cfg.namespace}/${this.cfg.name}`,
              identity: this.identity,
              xds: this.xds.state(),
              ...this.waypoint.configDump(),
            },
            null,
            2,
          ),
        );
      } else res.writeHead(404).end("try /config_dump\n");
    });
    await this.hboneServer.listen(
      { host: this.cfg.podIp, port: this.cfg.hbonePort },
      { name: `waypoint ${this.cfg.namespace}/${this.cfg.name}`, cert: () => this.certs.get(this.identity) },
    );
    if (this.cfg.plainPort)
      await this.waypoint.listenTcp({
        port: this.cfg.plainPort,
        host: this.cfg.podIp,
        dst: { ip: "0.0.0.0", port: 0 },
      });
    this.xds.start();
    // Readiness once the first configuration arrived (or after 10 s without: a waypoint with no services is valid).
    await Promise.race([this.xds.ready(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    this.ready = true;
    log.info(
      { gateway: `${this.cfg.namespace}/${this.cfg.name}`, identity: this.identity },
      "waypoint ready",
    );
  }

  async close(): Promise<void> {
    this.ready = false;
    await this.hboneServer.drain(this.cfg.drainSeconds * 1000).catch(() => {});
    await this.hboneServer.close();
    await this.waypoint.close();
    // Upstream tunnels: the cluster pools are closed; their HBONE sessions go
    // now (otherwise the process outlives close() until the peers hang up).
    this.hbone.destroy();
    await this.xds.close();
    this.certs.close();
    await this.tracer?.close();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** `ambit waypoint ...`: runs until SIGTERM/SIGINT, then drains. */
export async function runWaypoint(cfg: WaypointConfig): Promise<void> {
  const app = new WaypointApp(cfg);
  await app.start();
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await app.close();
}

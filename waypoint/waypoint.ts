// The waypoint: one owner of the live configuration (WaypointState), the
// HTTP pipeline, and the listeners. Configuration arrives per service
// (`applyServices`, from xDS through the codec); connections arrive through
// `serveStream` (from the HBONE server) or `listenTcp` (tests).
import type { Duplex } from "node:stream";
import type { WaypointService } from "../core/model/waypoint.js";
import { logger } from "../core/telemetry/logger.js";
import { Listeners } from "./listeners.js";
import { type ConnMeta, HttpProxy } from "./proxy.js";
import { compileService, WaypointState } from "./state.js";
import { AccessLog, type AccessLogSink } from "./telemetry.js";
import type { RequestTracer } from "./tracing.js";
import { TcpUpstream, type Upstream } from "./upstream/upstream.js";

const log = logger("waypoint");

export interface WaypointOptions {
  /** How endpoints are reached (default plain TCP); a function gets the state, e.g. for endpoint identities. */
  upstream?: Upstream | ((state: WaypointState) => Upstream);
  /** Fraction of requests written to the access log (0..1). */
  accessLogSample?: number;
  /** Where access log lines go (default: the `waypoint.access` logger). */
  accessLogSink?: AccessLogSink;
  /** Request spans over OTLP (started and closed by its owner). */
  tracer?: RequestTracer;
}

export class ServiceConfigError extends Error {
  readonly code = "CONFIG";
  constructor(
    readonly service: string,
    cause: Error,
  ) {
    super(`WaypointService ${service}: ${cause.message}`, { cause });
  }
}

export class Waypoint {
  readonly state: WaypointState;
  private readonly proxy: HttpProxy;
  private readonly listeners: Listeners;
  private started = false;

  constructor(opts: WaypointOptions = {}) {
    this.state = new WaypointState();
    const u = opts.upstream ?? new TcpUpstream();
    const upstream = typeof u === "function" ? u(this.state) : u;
    this.state.setUpstream(upstream);
    this.proxy = new HttpProxy(this.state, {
      accessLog: new AccessLog(opts.accessLogSample ?? 0, opts.accessLogSink),
      ...(opts.tracer ? { tracer: opts.tracer } : {}),
    });
    this.listeners = new Listeners(this.proxy, this.state, upstream);
  }

  async start(): Promise<void> {
    this.started = true;
    log.info("waypoint started");
  }

  get ready(): boolean {
    return this.started;
  }

  /**
   * Applies services (add or replace) and removals. All are compiled before
   * any is applied: one bad service throws ServiceConfigError (→ NACK) and
   * nothing changes.
   */
  applyServices(upserts: WaypointService[], removals: string[] = []): void {
    for (const s of upserts) {
      try {
        // compile-only pass: throws on a bad regex or the like
        compileCheck(s);
      } catch (e) {
        throw new ServiceConfigError(s.key, e as Error);
      }
    }
    for (const s of upserts) this.state.upsert(s);
    for (const k of removals) this.state.remove(k);
  }

  serveStream(stream: Duplex, meta: ConnMeta): void {
    this.listeners.serveStream(stream, meta);
  }

  /** What the waypoint holds now, for the admin config dump and `ambit config-dump`. */
  configDump(): { services: unknown[]; clusters: unknown[] } {
    return {
      services: [...this.state.services.values()].map((c) => c.svc),
      clusters: [...this.state.clusters.entries()].map(([name, c]) => ({
        name,
        inflight: c.state.inflight,
        endpoints: c.state.endpoints.map((e) => ({
          address: e.key,
          active: e.active,
          ejected: e.ejectedUntil > Date.now(),
          ejections: e.ejections,
        })),
      })),
    };
  }

  listenTcp(opts: { port: number; host?: string; dst?: { ip: string; port: number } }) {
    return this.listeners.listenTcp(opts);
  }

  async close(): Promise<void> {
    await this.listeners.close();
    this.state.close();
  }
}

function compileCheck(s: WaypointService): void {
  compileService(s);
}

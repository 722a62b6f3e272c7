// The waypoint: one owner of the live configuration (WaypointState), the
// HTTP pipeline, and the listeners. Configuration arrives per service
// (`applyServices`, from xDS through the codec); connections arrive through
// `serveStream` (from the HBONE server) or `listenTcp` (tests).
import type { Duplex } from "node:stream";
import type { WaypointService } from "../core/model/waypoint.js";
import { logger } from "../core/telemetry/logger.js";
import { Listeners } from "./listeners.js";
import { type ConnMeta, HttpProxy } from "./proxy.js";
import { WaypointState } from "./state.js";
import { AccessLog } from "./telemetry.js";
import { TcpUpstream, type Upstream } from "./upstream/upstream.js";

const log = logger("waypoint");

export interface WaypointOptions {
  upstream?: Upstream;
  /** Fraction of requests written to the access log (0..1). */
  accessLogSample?: number;
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
    const upstream = opts.upstream ?? new TcpUpstream();
    this.state = new WaypointState(upstream);
    this.proxy = new HttpProxy(this.state, { accessLog: new AccessLog(opts.accessLogSample ?? 0) });
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

  listenTcp(opts: { port: number; host?: string; dst?: { ip: string; port: number } }) {
    return this.listeners.listenTcp(opts);
  }

  async close(): Promise<void> {
    await this.listeners.close();
    this.state.close();
  }
}

import { compileService } from "./state.js";
function compileCheck(s: WaypointService): void {
  compileService(s);
}

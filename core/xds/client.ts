// The delta ADS client of ztunnel and waypoint
// (envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources).
//
// One stream carries every type. Each response goes to its type's handler;
// a handler that throws NACKs that response (its message goes back to the
// controller) and keeps its last good state; other types are unaffected.
// While the controller is away nothing is cleared: handlers keep serving what
// they have, and on reconnect the client tells the server what it holds
// (initial_resource_versions) so that only differences come back.
import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
  NodeSchema,
} from "../gen/xds_pb.js";
import { logger as componentLogger, type Logger } from "../telemetry/logger.js";
import { counter, gauge } from "../telemetry/metrics.js";
import { grpcServiceDefinition } from "./grpc-service.js";
import { shortTypeName } from "./type-urls.js";

export interface XdsUpdate {
  added: { name: string; version: string; resource: Any }[];
  removed: string[];
}

export interface XdsTypeHandler {
  typeUrl: string;
  /** Resource names to subscribe to; default: wildcard (everything of the type). */
  names?: string[];
  /** Apply a delta. Throw to NACK (message sent back; the handler keeps its last good state). */
  apply(update: XdsUpdate): void;
}

export interface DeltaAdsClientOptions {
  /** `host:port` of the controller's xDS server. */
  address: string;
  /** Default: plaintext. */
  credentials?: grpc.ChannelCredentials;
  node: { id: string; metadata?: Record<string, string> };
  handlers: XdsTypeHandler[];
  /**
   * Reconnect backoff (exponential, full jitter). Default 500 ms … 10 s: after
   * a controller outage of any length a proxy is back within 10 s of the
   * controller (30 s measured as 28 s of stale config after a restart), and
   * a fleet's reconnects are still spread over 10 s.
   */
  backoff?: { initialMs: number; maxMs: number };
  /** HTTP/2 keepalive ping interval (default 30 s) so a vanished controller is noticed. */
  keepaliveMs?: number;
  /** Extra grpc-js channel options, e.g. `grpc.ssl_target_name_override` when the controller's certificate names a DNS name. */
  channelOptions?: grpc.ChannelOptions;
  logger?: Logger;
}

export interface XdsTypeState {
  nonce?: string;
  acked: number;
  nacked: number;
  lastError?: string;
  resources: number;
}

interface TypeState {
  handler: XdsTypeHandler;
  /** Named subscriptions; undefined: wildcard. */
  names: Set<string> | undefined;
  /** name → version applied (what initial_resource_versions reports on reconnect). */
  versions: Map<string, string>;
  nonce?: string;
  acked: number;
  nacked: number;
  lastError?: string;
  applied: boolean;
}

type AdsStream = grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

const AdsClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(AggregatedDiscoveryService),
  "AggregatedDiscoveryService",
);

const metrics = {
  connected: gauge("ambit_xds_client_connected", "1 while the xDS stream to the controller is up"),
  responses: counter(
    "ambit_xds_client_responses_total",
    "xDS responses received, by type and result (ack|nack)",
    ["type", "result"],
  ),
  reconnects: counter("ambit_xds_client_reconnects_total", "xDS streams that ended and were retried"),
};

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * The wait before reconnect attempt `attempt` (0-based since the last
 * response): "full jitter", uniform in [0, min(maxMs, initialMs·2^attempt)).
 * Jitter spreads the reconnects of every proxy of a cluster after a
 * controller restart instead of having them arrive together.
 */
export function reconnectDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  return random() * reconnectCapMs(attempt, policy);
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 10_000 };

/** The upper bound of reconnectDelayMs for an attempt. */
export function reconnectCapMs(attempt: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/** gRPC INVALID_ARGUMENT: the code Envoy and ztunnel put in error_detail of a NACK. */
const NACK_CODE = 3;

export class DeltaAdsClient extends EventEmitter {
  private readonly opts: DeltaAdsClientOptions;
  private readonly log: Logger;
  private readonly types = new Map<string, TypeState>();
  private client: grpc.Client | undefined;
  private call: AdsStream | undefined;
  private connected = false;
  private closing = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;

  constructor(opts: DeltaAdsClientOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger ?? componentLogger("xds.client");
    for (const h of opts.handlers) {
      if (this.types.has(h.typeUrl)) throw new Error(`two handlers for xDS type ${h.typeUrl}`);
      this.types.set(h.typeUrl, {
        handler: h,
        names: h.names ? new Set(h.names) : undefined,
        versions: new Map(),
        acked: 0,
        nacked: 0,
        applied: false,
      });
    }
    this.readyPromise = new Promise((resolve) => {
      this.resolveReady = resolve;
    });
    if (this.types.size === 0) this.resolveReady();
  }

  start(): void {
    if (this.client || this.closing) return;
    const backoff = this.backoff();
    const keepalive = this.opts.keepaliveMs ?? 30_000;
    this.client = new AdsClient(
      this.opts.address,
      this.opts.credentials ?? grpc.credentials.createInsecure(),
      {
        "grpc.max_receive_message_length": 256 * 1024 * 1024,
        "grpc.max_send_message_length": 64 * 1024 * 1024,
        // A full state of the world is megabytes: a 64 KiB window would need a round trip per 64 KiB.
        "grpc-node.flow_control_window": 16 * 1024 * 1024,
        "grpc.initial_reconnect_backoff_ms": backoff.initialMs,
        "grpc.max_reconnect_backoff_ms": backoff.maxMs,
        "grpc.keepalive_time_ms": keepalive,
        "grpc.keepalive_timeout_ms": Math.min(keepalive, 10_000),
        ...this.opts.channelOptions,
      },
    );
    this.openStream();
  }

  /** Resolves once the first response of every type has been applied. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  state(): { connected: boolean; perType: Record<string, XdsTypeState> } {
    const perType: Record<string, XdsTypeState> = {};
    for (const [typeUrl, t] of this.types) {
      perType[typeUrl] = {
        ...(t.nonce !== undefined ? { nonce: t.nonce } : {}),
        acked: t.acked,
        nacked: t.nacked,
        ...(t.lastError !== undefined ? { lastError: t.lastError } : {}),
        resources: t.versions.size,
      };
    }
    return { connected: this.connected, perType };
  }

  /**
   * Add or drop named subscriptions of a type that was not subscribed by
   * wildcard (on-demand lookups). Takes effect now when connected, and on
   * every reconnect. Dropped names are forgotten by the client (the handler
   * is told they are removed).
   */
  updateSubscription(typeUrl: string, change: { subscribe?: string[]; unsubscribe?: string[] }): void {
    const t = this.types.get(typeUrl);
    if (!t) throw new Error(`no handler for xDS type ${typeUrl}`);
    if (!t.names) throw new Error(`xDS type ${typeUrl} is subscribed by wildcard`);
    const subscribe = (change.subscribe ?? []).filter((n) => !t.names?.has(n));
    const unsubscribe = (change.unsubscribe ?? []).filter((n) => t.names?.has(n));
    for (const n of subscribe) t.names.add(n);
    for (const n of unsubscribe) t.names.delete(n);
    const forgotten = unsubscribe.filter((n) => t.versions.has(n));
    if (forgotten.length > 0) {
      t.handler.apply({ added: [], removed: forgotten });
      for (const n of forgotten) t.versions.delete(n);
    }
    if (this.call && (subscribe.length > 0 || unsubscribe.length > 0)) {
      this.call.write(
        create(DeltaDiscoveryRequestSchema, {
          typeUrl,
          resourceNamesSubscribe: subscribe,
          resourceNamesUnsubscribe: unsubscribe,
        }),
      );
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const call = this.call;
    this.call = undefined;
    if (call) call.cancel();
    this.setDisconnected("client closed");
    this.client?.close();
    this.client = undefined;
  }

  // ---- stream ----------------------------------------------------------

  private backoff(): BackoffPolicy {
    return this.opts.backoff ?? DEFAULT_BACKOFF;
  }

  private openStream(): void {
    if (!this.client || this.closing) return;
    const method = (this.client as unknown as { deltaAggregatedResources: () => AdsStream })
      .deltaAggregatedResources;
    const call = method.call(this.client);
    this.call = call;
    call.on("metadata", () => {
      if (call === this.call) this.setConnected();
    });
    call.on("data", (res: DeltaDiscoveryResponse) => {
      if (call === this.call) this.onResponse(call, res);
    });
    // "status" always follows (OK or not); errors are reported there.
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => {
      if (call !== this.call) return;
      this.call = undefined;
      this.onStreamEnd(`${grpc.status[status.code] ?? status.code}: ${status.details}`);
    });
    let first = true;
    for (const [typeUrl, t] of this.types) {
      const req = create(DeltaDiscoveryRequestSchema, {
        typeUrl,
        // Empty on the first request of a type is the (legacy, universally understood) wildcard.
        resourceNamesSubscribe: t.names ? [...t.names] : [],
        initialResourceVersions: Object.fromEntries(t.versions),
      });
      if (first) {
        req.node = create(NodeSchema, {
          id: this.opts.node.id,
          metadata: { ...(this.opts.node.metadata ?? {}) },
        });
        first = false;
      }
      call.write(req);
    }
  }

  private onStreamEnd(reason: string): void {
    this.setDisconnected(reason);
    if (this.closing) return;
    const delay = reconnectDelayMs(this.attempt, this.backoff());
    this.attempt++;
    metrics.reconnects.inc();
    this.log.debug(
      { reason, delayMs: Math.round(delay), attempt: this.attempt },
      "xDS stream ended; reconnecting",
    );
    this.emit("reconnecting", { attempt: this.attempt, delayMs: delay, reason });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.openStream();
    }, delay);
  }

  private setConnected(): void {
    if (this.connected) return;
    this.connected = true;
    metrics.connected.set(1);
    this.log.info({ address: this.opts.address }, "xDS connected");
    this.emit("connected");
  }

  private setDisconnected(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    metrics.connected.set(0);
    this.log.warn({ address: this.opts.address, reason }, "xDS disconnected; keeping last good state");
    this.emit("disconnected", { reason });
  }

  private onResponse(call: AdsStream, res: DeltaDiscoveryResponse): void {
    // Only a response proves the stream healthy (a server that accepts then refuses must not reset the backoff).
    this.attempt = 0;
    this.setConnected();
    const t = this.types.get(res.typeUrl);
    let error: string | undefined;
    let update: XdsUpdate | undefined;
    if (!t) {
      error = `no handler for type ${res.typeUrl}`;
    } else {
      update = { added: [], removed: [...res.removedResources] };
      for (const r of res.resources) {
        if (!r.resource) {
          error = `resource ${r.name}: no resource body`;
          break;
        }
        update.added.push({ name: r.name, version: r.version, resource: r.resource });
      }
      if (!error) {
        try {
          t.handler.apply(update);
        } catch (err) {
          error = err instanceof Error ? err.message : String(err);
        }
      }
    }
    const type = shortTypeName(res.typeUrl);
    if (error !== undefined) {
      call.write(
        create(DeltaDiscoveryRequestSchema, {
          typeUrl: res.typeUrl,
          responseNonce: res.nonce,
          errorDetail: { code: NACK_CODE, message: error },
        }),
      );
      if (t) {
        t.nacked++;
        t.lastError = error;
        t.nonce = res.nonce;
      }
      metrics.responses.inc({ type, result: "nack" });
      this.log.warn({ type, nonce: res.nonce, error }, "xDS response rejected (NACK)");
      this.emit("nack", { typeUrl: res.typeUrl, nonce: res.nonce, message: error });
      return;
    }
    if (!t || !update) return;
    for (const a of update.added) t.versions.set(a.name, a.version);
    for (const name of update.removed) t.versions.delete(name);
    t.acked++;
    metrics.responses.inc({ type, result: "ack" });
    t.nonce = res.nonce;
    call.write(create(DeltaDiscoveryRequestSchema, { typeUrl: res.typeUrl, responseNonce: res.nonce }));
    this.emit("ack", {
      typeUrl: res.typeUrl,
      nonce: res.nonce,
      added: update.added.length,
      removed: update.removed.length,
    });
    if (!t.applied) {
      t.applied = true;
      if ([...this.types.values()].every((x) => x.applied)) this.resolveReady();
    }
  }
}

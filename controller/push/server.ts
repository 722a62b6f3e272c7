// The delta ADS server (envoy.service.discovery.v3.AggregatedDiscoveryService/
// DeltaAggregatedResources) that pushes the model to every ztunnel and waypoint.
//
// Shape: the controller declares the full desired set of each type with
// publish(); the server keeps one encoded copy of every resource (the
// Resource message bytes, shared by all streams) and, per stream and type,
// what it has sent. Each stream reconciles "what the proxy has" against "what
// is published" when it is free to send: one response in flight per stream and
// type (until ACK/NACK), so a slow or stalled proxy simply accumulates dirty
// names (coalesced) and never holds back the others.
import { EventEmitter } from "node:events";
import type { Any } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { AggregatedDiscoveryService, type DeltaDiscoveryRequest } from "../../core/gen/xds_pb.js";
import { logger as componentLogger, type Logger } from "../../core/telemetry/logger.js";
import { counter, gauge, histogram } from "../../core/telemetry/metrics.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";
import { shortTypeName } from "../../core/xds/type-urls.js";
import type { ProxyConnectionInfo, PublishedResource } from "./connection-info.js";
import { NackLog } from "./nack-log.js";
import { updatePublished } from "./published-set.js";
import { encodeFramedResponse, type FramedResponse, shareFraming } from "./response-encoding.js";
import {
  ackedCount,
  ackedMap,
  type Inflight,
  newStreamType,
  recordSent,
  resolveName,
  type SharedResponse,
  type StreamType,
  subscribed,
  type TypeState,
  updateSubscription,
} from "./stream-state.js";

export type { ProxyConnectionInfo, ProxyTypeInfo, PublishedResource } from "./connection-info.js";

const metrics = {
  connected: gauge("ambit_xds_connected_proxies", "Proxies with an open xDS stream"),
  pushes: counter("ambit_xds_pushes_total", "xDS responses sent", ["type"]),
  nacks: counter("ambit_xds_nacks_total", "xDS responses rejected by a proxy", ["type", "reason"]),
  pushDuration: histogram(
    "ambit_xds_push_duration_seconds",
    "From a change being published to the proxy's ACK",
    ["type"],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ),
};

/**
 * grpc.Server options for the xDS ports: room for large initial_resource_versions
 * maps (tens of thousands of names), and keepalive pings so the streams of
 * vanished proxies (a node gone) are noticed and dropped.
 */
export const adsGrpcServerOptions: grpc.ServerOptions = {
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
};

export interface DeltaAdsServerOptions {
  /** Changes published within this window go out together (default 10 ms). */
  debounceMs?: number;
  logger?: Logger;
}

type AdsCall = grpc.ServerDuplexStream<DeltaDiscoveryRequest, FramedResponse>;

interface Stream {
  id: number;
  call: AdsCall;
  nodeId: string;
  nodeName?: string;
  metadata: Record<string, string>;
  peer: string;
  connectedAt: Date;
  types: Map<string, StreamType>;
  /** The transport buffer is full; wait for "drain". */
  blocked: boolean;
  closed: boolean;
  /** Writes the shared framed bytes (see shareFraming). */
  sharedFraming: boolean;
}

export class DeltaAdsServer extends EventEmitter {
  private readonly debounceMs: number;
  private readonly log: Logger;
  private readonly types = new Map<string, TypeState>();
  private readonly streams = new Map<number, Stream>();
  private readonly nackLog = new NackLog();
  private nextStreamId = 1;
  private nextNonce = 1;
  private flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** When the last flush ran (performance.now()). */
  private lastFlush = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(opts: DeltaAdsServerOptions = {}) {
    super();
    this.debounceMs = opts.debounceMs ?? 10;
    this.log = opts.logger ?? componentLogger("controller.push");
  }

  /** Register on a grpc.Server (the controller wires 15010 plaintext and 15012 TLS). */
  register(server: grpc.Server): void {
    const def = grpcServiceDefinition(AggregatedDiscoveryService);
    const delta = def.deltaAggregatedResources;
    if (!delta) throw new Error("generated AggregatedDiscoveryService lacks DeltaAggregatedResources");
    // Responses are written as ready-made bytes (see encodeFramedResponse and shareFraming).
    const serialize = (r: FramedResponse): Buffer => r.payload;
    server.addService(
      { deltaAggregatedResources: { ...delta, responseSerialize: serialize as (v: unknown) => Buffer } },
      { deltaAggregatedResources: (call: AdsCall) => this.accept(call) },
    );
  }

  /**
   * Declare the full desired set of resources of one type. Only changes and
   * removals are pushed. Proxies subscribing to a type get their first
   * response once the type has been published (an empty map is fine), so a
   * controller that has not finished its first translation never tells a proxy
   * "there is nothing".
   */
  publish(
    typeUrl: string,
    resources: ReadonlyMap<string, Any>,
    aliases?: ReadonlyMap<string, readonly string[]>,
  ): void {
    let state = this.types.get(typeUrl);
    if (!state) {
      state = { published: false, generation: 0, entries: new Map(), aliases: new Map(), shared: new Map() };
      this.types.set(typeUrl, state);
    }
    const changed = updatePublished(state, resources, aliases);
    if (changed === undefined) return;
    state.generation++;
    state.shared.clear();
    const now = performance.now();
    // Large changes reconcile everything rather than track each name per stream.
    const bulk = changed.length > 256;
    for (const s of this.streams.values()) {
      const st = s.types.get(typeUrl);
      if (!st) continue;
      if (st.dirty !== "all") {
        if (bulk) st.dirty = "all";
        else for (const n of changed) st.dirty.add(n);
      }
      st.dirtySince ??= now;
    }
    this.scheduleFlush();
  }

  /** The published resources of a type (for config dumps and `ambit check`). */
  resources(typeUrl: string): ReadonlyMap<string, PublishedResource> {
    return this.types.get(typeUrl)?.entries ?? new Map();
  }

  /** Per-proxy view for `ambit check` and the dashboard. */
  connections(): ProxyConnectionInfo[] {
    return [...this.streams.values()].map((s) => ({
      id: s.id,
      nodeId: s.nodeId,
      ...(s.nodeName !== undefined ? { nodeName: s.nodeName } : {}),
      metadata: s.metadata,
      peer: s.peer,
      connectedAt: s.connectedAt,
      types: [...s.types.values()].map((st) => ({
        typeUrl: st.typeUrl,
        wildcard: st.wildcard,
        names: [...st.names],
        resources: ackedCount(st),
        acks: st.acks,
        nacks: st.nacks,
        ...(st.lastAckNonce !== undefined ? { lastAckNonce: st.lastAckNonce } : {}),
        ...(st.lastNack ? { lastNack: st.lastNack } : {}),
        awaitingAck: st.inflight !== undefined,
        inSync: this.inSync(st),
      })),
      sharedFraming: s.sharedFraming,
    }));
  }

  /** Ends every stream (proxies reconnect elsewhere or later); the grpc.Server is the caller's. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.flushTimer) {
      clearTimeout(this.flushTimer as NodeJS.Timeout);
      clearImmediate(this.flushTimer as NodeJS.Immediate);
    }
    this.flushTimer = undefined;
    for (const s of [...this.streams.values()]) {
      try {
        s.call.end();
      } catch {
        // already torn down by the transport
      }
      this.drop(s, "server closing");
    }
  }

  // ---- streams ---------------------------------------------------------

  private accept(call: AdsCall): void {
    if (this.closed) {
      call.end();
      return;
    }
    const s: Stream = {
      id: this.nextStreamId++,
      call,
      nodeId: "",
      metadata: {},
      peer: call.getPeer(),
      connectedAt: new Date(),
      types: new Map(),
      blocked: false,
      closed: false,
      sharedFraming: shareFraming(call),
    };
    this.streams.set(s.id, s);
    metrics.connected.inc();
    // Headers now, so the proxy knows it is connected before the first response.
    call.sendMetadata(new grpc.Metadata());
    call.on("data", (req: DeltaDiscoveryRequest) => {
      try {
        this.onRequest(s, req);
      } catch (err) {
        this.log.error({ err, stream: s.id, node: s.nodeId }, "xDS request handling failed");
        call.destroy(err as Error);
        this.drop(s, "request handling failed");
      }
    });
    call.on("drain", () => {
      s.blocked = false;
      this.flushStream(s);
    });
    call.on("end", () => {
      call.end();
      this.drop(s, "client closed the stream");
    });
    call.on("cancelled", () => this.drop(s, "cancelled"));
    call.on("error", (err) => this.drop(s, err.message));
    call.on("close", () => this.drop(s, "closed"));
  }

  private drop(s: Stream, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    metrics.connected.dec();
    this.log.info({ stream: s.id, node: s.nodeId, reason }, "proxy disconnected");
    this.emit("disconnect", { id: s.id, nodeId: s.nodeId, reason });
  }

  private onRequest(s: Stream, req: DeltaDiscoveryRequest): void {
    if (req.node && !s.nodeId) {
      s.nodeId = req.node.id;
      for (const [k, v] of Object.entries(req.node.metadata ?? {}))
        if (typeof v === "string") s.metadata[k] = v;
      if (s.metadata.NODE_NAME !== undefined) s.nodeName = s.metadata.NODE_NAME;
      this.log.info({ stream: s.id, node: s.nodeId, nodeName: s.nodeName, peer: s.peer }, "proxy connected");
      this.emit("connect", { id: s.id, nodeId: s.nodeId, nodeName: s.nodeName });
    }
    const typeUrl = req.typeUrl;
    if (!typeUrl) return;
    let st = s.types.get(typeUrl);
    if (!st) {
      st = newStreamType(req);
      s.types.set(typeUrl, st);
    } else {
      if (req.responseNonce) this.onAck(s, st, req);
      updateSubscription(st, req, this.types.get(typeUrl));
    }
    this.flushStream(s);
  }

  private onAck(s: Stream, st: StreamType, req: DeltaDiscoveryRequest): void {
    const inflight = st.inflight;
    // A stale nonce (an older response) carries no news about the current one.
    if (!inflight || req.responseNonce !== inflight.nonce) return;
    st.inflight = undefined;
    const type = shortTypeName(st.typeUrl);
    if (req.errorDetail) {
      const message = req.errorDetail.message || `code ${req.errorDetail.code}`;
      st.nacks++;
      st.lastNack = { nonce: inflight.nonce, message, at: new Date() };
      const reason = this.nackLog.reason(type, message);
      metrics.nacks.inc({ type, reason });
      this.log[this.nackLog.level(type, reason)](
        { stream: s.id, node: s.nodeId, type, nonce: inflight.nonce, message },
        "proxy rejected xDS response (NACK)",
      );
      this.emit("nack", { id: s.id, nodeId: s.nodeId, typeUrl: st.typeUrl, nonce: inflight.nonce, message });
      // The proxy kept what it had; the server still never resends the rejected versions.
      for (const e of inflight.added)
        if (!st.diverged.has(e.name)) st.diverged.set(e.name, inflight.before.get(e.name));
      for (const n of inflight.removed) if (!st.diverged.has(n)) st.diverged.set(n, inflight.before.get(n));
      return;
    }
    if (st.diverged.size > 0) {
      for (const e of inflight.added) st.diverged.delete(e.name);
      for (const n of inflight.removed) st.diverged.delete(n);
    }
    st.acks++;
    st.lastAckNonce = inflight.nonce;
    metrics.pushDuration.observe({ type }, (performance.now() - inflight.changeTime) / 1000);
    this.emit("ack", { id: s.id, nodeId: s.nodeId, typeUrl: st.typeUrl, nonce: inflight.nonce });
  }

  // ---- pushing ---------------------------------------------------------

  /**
   * A change after a quiet spell goes out at once (after the current tick,
   * so that publishes made together go out together); changes that follow
   * a flush within debounceMs wait for the rest of that window. Streams with
   * a response in flight coalesce further changes until their ACK anyway.
   */
  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return;
    const flush = () => {
      this.flushTimer = undefined;
      this.lastFlush = performance.now();
      for (const s of this.streams.values()) this.flushStream(s);
    };
    const wait = this.lastFlush + this.debounceMs - performance.now();
    this.flushTimer = wait > 0 ? setTimeout(flush, wait) : setImmediate(flush);
  }

  /** Everything published and subscribed has been sent and ACKed (dirty names are reconciled on every send). */
  private inSync(st: StreamType): boolean {
    if (!this.types.get(st.typeUrl)?.published || st.inflight || st.initialPending) return false;
    return st.diverged.size === 0 && st.probes.size === 0 && st.dirty !== "all" && st.dirty.size === 0;
  }

  /** The versions one proxy holds of one type, by its ACKs (for `ambit check`). */
  ackedVersions(connectionId: number, typeUrl: string): Map<string, string> {
    const st = this.streams.get(connectionId)?.types.get(typeUrl);
    return st ? ackedMap(st) : new Map();
  }

  private flushStream(s: Stream): void {
    if (s.closed || s.blocked) return;
    for (const st of s.types.values()) {
      if (st.inflight) continue;
      const state = this.types.get(st.typeUrl);
      if (!state?.published) continue;
      const pending = st.initialPending || st.probes.size > 0 || st.dirty === "all" || st.dirty.size > 0;
      if (!pending) continue;
      this.send(s, st, state);
      if (s.blocked) return;
    }
  }

  private send(s: Stream, st: StreamType, state: TypeState): void {
    const shareable =
      st.syncedGen !== undefined && st.wildcard && st.names.size === 0 && st.probes.size === 0;
    if (shareable && st.syncedGen !== state.generation) {
      const from = st.syncedGen as number;
      let shared = state.shared.get(from);
      if (!shared) {
        // Every stream synced at `from` holds the same dirty names (publish() adds to all of them
        // alike): an incremental change diffs those names, not every published resource.
        const { added, removed } = this.diff(st, state, st.dirty);
        const nonce = (this.nextNonce++).toString(36);
        const bytes = encodeFramedResponse(
          st.typeUrl,
          String(state.generation),
          added.map((e) => e.encoded),
          removed,
          nonce,
        );
        const before = new Map<string, string>();
        const sentAfter = new Map(st.sent);
        for (const e of added) {
          const had = st.sent.get(e.name);
          if (had !== undefined) before.set(e.name, had);
          sentAfter.set(e.name, e.version);
        }
        for (const name of removed) {
          const had = st.sent.get(name);
          if (had !== undefined) before.set(name, had);
          sentAfter.delete(name);
        }
        shared = {
          nonce,
          added,
          removed,
          bytes,
          before,
          sentAfter,
          ackedDelta: st.sent.size - sentAfter.size,
        };
        state.shared.set(from, shared);
      }
      st.dirty = new Set();
      if (shared.added.length === 0 && shared.removed.length === 0 && !st.initialPending) {
        st.dirtySince = undefined;
        st.syncedGen = state.generation;
        return;
      }
      this.write(s, st, state, shared.added, shared.removed, shared.nonce, shared.bytes, shared);
      return;
    }
    const { added, removed } = this.diff(st, state, st.dirty);
    // Named subscriptions to names that do not exist: say so, once.
    for (const n of st.probes) {
      const name = resolveName(this.types.get(st.typeUrl), n);
      if (!state.entries.has(name) && !removed.includes(n)) removed.push(n);
    }
    st.dirty = new Set();
    st.probes.clear();
    if (added.length === 0 && removed.length === 0 && !st.initialPending) {
      st.dirtySince = undefined;
      if (st.wildcard && st.names.size === 0) st.syncedGen = state.generation;
      return;
    }
    const nonce = (this.nextNonce++).toString(36);
    const bytes = encodeFramedResponse(
      st.typeUrl,
      String(state.generation),
      added.map((e) => e.encoded),
      removed,
      nonce,
    );
    this.write(s, st, state, added, removed, nonce, bytes);
  }

  /** What the stream lacks (added) and holds but should not (removed), over `names` or everything. */
  private diff(
    st: StreamType,
    state: TypeState,
    names: Set<string> | "all",
  ): { added: PublishedResource[]; removed: string[] } {
    const added: PublishedResource[] = [];
    const removed: string[] = [];
    const consider = (name: string): void => {
      const e = state.entries.get(name);
      const has = st.sent.get(name);
      if (e && subscribed(st, e)) {
        if (has !== e.version) added.push(e);
      } else if (has !== undefined) {
        removed.push(name);
      }
    };
    if (names === "all") {
      // The hot path of an initial sync: walk entries directly.
      for (const e of state.entries.values()) {
        const has = st.sent.get(e.name);
        if (subscribed(st, e)) {
          if (has !== e.version) added.push(e);
        } else if (has !== undefined) {
          removed.push(e.name);
        }
      }
      for (const name of st.sent.keys()) {
        if (!state.entries.has(name)) removed.push(name);
      }
    } else {
      for (const name of names) consider(name);
    }
    return { added, removed };
  }

  /** Records what a response carries (for ACK/NACK) and writes it. */
  private write(
    s: Stream,
    st: StreamType,
    state: TypeState,
    added: PublishedResource[],
    removed: string[],
    nonce: string,
    bytes: FramedResponse,
    shared?: SharedResponse,
  ): void {
    const changeTime = st.dirtySince ?? performance.now();
    st.dirtySince = undefined;
    st.initialPending = false;
    if (shared) {
      // O(1) per stream: a full sync to a hundred proxies builds one map, not a hundred.
      st.sent = shared.sentAfter;
      st.sentShared = true;
      this.finishWrite(
        s,
        st,
        state,
        { nonce, changeTime, added, removed, before: shared.before, ackedDelta: shared.ackedDelta },
        bytes,
      );
      return;
    }
    const { before, ackedDelta } = recordSent(st, added, removed);
    this.finishWrite(s, st, state, { nonce, changeTime, added, removed, before, ackedDelta }, bytes);
  }

  private finishWrite(
    s: Stream,
    st: StreamType,
    state: TypeState,
    inflight: Inflight,
    bytes: FramedResponse,
  ): void {
    st.inflight = inflight;
    st.syncedGen = st.wildcard && st.names.size === 0 ? state.generation : undefined;
    metrics.pushes.inc({ type: shortTypeName(st.typeUrl) });
    if (!s.call.write(bytes)) s.blocked = true;
  }
}

// Per stream and type, what the delta ADS server keeps: what is published
// (TypeState), what each proxy subscribed to, was sent and ACKed (StreamType),
// and the pure questions asked of and changes made to that state. server.ts
// does the I/O.
import type { DeltaDiscoveryRequest } from "../../core/gen/xds_pb.js";
import type { PublishedResource } from "./connection-info.js";
import type { FramedResponse } from "./response-encoding.js";

export interface TypeState {
  published: boolean;
  generation: number;
  entries: Map<string, PublishedResource>;
  /** alias → resource name. */
  aliases: Map<string, string>;
  /**
   * Responses shared by every wildcard stream that holds the same generation
   * (by its `syncedGen`), to the current generation: a full sync to a hundred
   * proxies encodes one response, not a hundred. Cleared on each change.
   */
  shared: Map<number, SharedResponse>;
}

export interface SharedResponse {
  /** Unique within each stream (each stream gets one response per generation pair). */
  nonce: string;
  added: PublishedResource[];
  removed: string[];
  bytes: FramedResponse;
  /** Versions before this response of the names it changes (the same for every stream that takes it). */
  before: Map<string, string>;
  /** `sent` after it: shared by the streams that take it, copied by one before it changes (copy on write). */
  sentAfter: Map<string, string>;
  ackedDelta: number;
}

/** `syncedGen` of a stream that holds nothing of the type. */
export const HOLDS_NOTHING = -1;

export interface Inflight {
  nonce: string;
  changeTime: number;
  added: PublishedResource[];
  removed: string[];
  /** For names the proxy already had: the version before this response (to restore on NACK). */
  before: Map<string, string>;
  /** Resources held before this response minus after it (ackedCount without walking `added`). */
  ackedDelta: number;
}

export interface StreamType {
  typeUrl: string;
  wildcard: boolean;
  names: Set<string>;
  /** name → version the proxy has or is being sent (never resend a NACKed version). */
  sent: Map<string, string>;
  /** `sent` is a SharedResponse's map: copy before changing it. */
  sentShared: boolean;
  /**
   * Names whose ACKed version differs from `sent` because a response was
   * NACKed: the version the proxy kept (undefined: it has none). Usually empty.
   */
  diverged: Map<string, string | undefined>;
  dirty: Set<string> | "all";
  /** Named subscriptions to answer even when missing (removed_resources says "does not exist"). */
  probes: Set<string>;
  /**
   * Set when the stream is wildcard-only and `sent` is exactly the published
   * set of this generation (HOLDS_NOTHING: empty), so that its next response
   * is the same as that of every other stream at this generation.
   */
  syncedGen: number | undefined;
  dirtySince: number | undefined;
  initialPending: boolean;
  inflight: Inflight | undefined;
  acks: number;
  nacks: number;
  lastAckNonce?: string;
  lastNack?: { nonce: string; message: string; at: Date };
}

export function subscribed(st: StreamType, e: PublishedResource): boolean {
  if (st.wildcard || st.names.has(e.name)) return true;
  for (const a of e.aliases) if (st.names.has(a)) return true;
  return false;
}

/** name → version the proxy holds by its ACKs. */
export function ackedMap(st: StreamType): Map<string, string> {
  const out = new Map(st.sent);
  if (st.inflight) {
    for (const e of st.inflight.added) {
      const v = st.inflight.before.get(e.name);
      if (v === undefined) out.delete(e.name);
      else out.set(e.name, v);
    }
    for (const n of st.inflight.removed) {
      const v = st.inflight.before.get(n);
      if (v !== undefined) out.set(n, v);
    }
  }
  for (const [n, v] of st.diverged) {
    if (v === undefined) out.delete(n);
    else out.set(n, v);
  }
  return out;
}

/** ackedMap(st).size without copying `sent` (connections() is polled by `ambit check` and tests). */
export function ackedCount(st: StreamType): number {
  if (!st.inflight && st.diverged.size === 0) return st.sent.size;
  if (st.inflight && st.diverged.size === 0) return st.sent.size + st.inflight.ackedDelta;
  const overrides = new Map<string, string | undefined>();
  if (st.inflight) {
    for (const e of st.inflight.added) overrides.set(e.name, st.inflight.before.get(e.name));
    for (const n of st.inflight.removed) {
      const v = st.inflight.before.get(n);
      if (v !== undefined) overrides.set(n, v);
    }
  }
  for (const [n, v] of st.diverged) overrides.set(n, v);
  let count = st.sent.size;
  for (const [n, v] of overrides) count += (v !== undefined ? 1 : 0) - (st.sent.has(n) ? 1 : 0);
  return count;
}

/** Makes `sent` the stream's own before changing it (it may be a SharedResponse's map). */
export function ownSent(st: StreamType): void {
  if (!st.sentShared) return;
  st.sent = new Map(st.sent);
  st.sentShared = false;
}

/**
 * Records a response of this stream's own (not a shared one) in `st.sent`:
 * what each name held before (to restore on a NACK) and by how much the
 * acknowledged count changes once it is ACKed.
 */
export function recordSent(
  st: StreamType,
  added: readonly PublishedResource[],
  removed: readonly string[],
): { before: Map<string, string>; ackedDelta: number } {
  ownSent(st);
  const sizeBefore = st.sent.size;
  const before = new Map<string, string>();
  for (const e of added) {
    const had = st.sent.get(e.name);
    if (had !== undefined) before.set(e.name, had);
    st.sent.set(e.name, e.version);
  }
  for (const name of removed) {
    const had = st.sent.get(name);
    if (had !== undefined) before.set(name, had);
    st.sent.delete(name);
  }
  return { before, ackedDelta: sizeBefore - st.sent.size };
}

/** A name as published: itself, or the resource an alias of it names (an Address by IP). */
export function resolveName(state: TypeState | undefined, name: string): string {
  if (!state || state.entries.has(name)) return name;
  return state.aliases.get(name) ?? name;
}

/** A stream's state for a type from its first request of it: everything to send (dirty "all"), minus what it holds. */
export function newStreamType(req: DeltaDiscoveryRequest): StreamType {
  const subscribe = req.resourceNamesSubscribe;
  const st: StreamType = {
    typeUrl: req.typeUrl,
    // Legacy wildcard: the first request names nothing.
    wildcard: subscribe.length === 0 || subscribe.includes("*"),
    names: new Set(subscribe.filter((n) => n !== "*")),
    sent: new Map(),
    sentShared: false,
    diverged: new Map(),
    dirty: "all",
    probes: new Set(subscribe.filter((n) => n !== "*")),
    syncedGen: undefined,
    dirtySince: performance.now(),
    initialPending: true,
    inflight: undefined,
    acks: 0,
    nacks: 0,
  };
  // What the proxy already holds (reconnect): only differences are sent.
  for (const [name, version] of Object.entries(req.initialResourceVersions)) {
    st.sent.set(name, version);
  }
  if (st.wildcard && st.names.size === 0 && st.sent.size === 0) st.syncedGen = HOLDS_NOTHING;
  return st;
}

/** A later request's subscribe/unsubscribe lists applied to the stream's state of that type. */
export function updateSubscription(st: StreamType, req: DeltaDiscoveryRequest, state: TypeState | undefined): void {
  // Any change of subscription makes what the stream holds its own (a reconcile re-establishes it).
  if (req.resourceNamesSubscribe.length > 0 || req.resourceNamesUnsubscribe.length > 0)
    st.syncedGen = undefined;
  for (const n of req.resourceNamesSubscribe) {
    if (n === "*") {
      if (!st.wildcard) st.dirty = "all";
      st.wildcard = true;
    } else if (!st.names.has(n)) {
      st.names.add(n);
      st.probes.add(n);
      if (st.dirty !== "all") st.dirty.add(resolveName(state, n));
    }
  }
  if (req.resourceNamesUnsubscribe.length === 0) return;
  for (const n of req.resourceNamesUnsubscribe) {
    if (n === "*") st.wildcard = false;
    else st.names.delete(n);
    st.probes.delete(n);
  }
  // The proxy forgets what it unsubscribed from; so does the server (no removed_resources for those).
  const entries = state?.entries;
  ownSent(st);
  for (const name of [...st.sent.keys()]) {
    const e = entries?.get(name);
    if (!e ? !st.wildcard && !st.names.has(name) : !subscribed(st, e)) {
      st.sent.delete(name);
      st.diverged.delete(name);
    }
  }
}

// The kube provider: one informer (list, then watch) per resource the
// translator reads, kept in memory, and a ClusterSnapshot of them all emitted
// ("snapshot" event) after a burst of changes settles. Same interface as the
// local provider, so the pure translator does not know where objects came from.
//
// Informers are @kubernetes/client-node's ListWatch (re-lists on 410 Gone,
// re-watches when the server closes the stream). It stops on any other error;
// we restart it with backoff. A CRD that is not installed (404) counts as an
// empty list and is looked for again later, so installing the Gateway API after
// ambit works without a restart.
import { EventEmitter } from "node:events";
import { type KubernetesObject, ListWatch, Watch } from "@kubernetes/client-node";
import type { ObjectError } from "../../../core/errors/errors.js";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import { type ClusterSnapshot, emptySnapshot, type KubeObject } from "../objects.js";
import { isNotFound, KubeApiError, type KubeClient } from "./client.js";
import { apiVersionOf, collectionPath, WATCHED_RESOURCES, type WatchedResource } from "./resources.js";

export interface KubeProviderOptions {
  client: KubeClient;
  logger?: Logger;
  /** Quiet time after a change before a snapshot is emitted (ms, default 100). */
  debounceMs?: number;
  /** Longest a snapshot waits under continuous changes (ms, default 1000). */
  maxDelayMs?: number;
  /** First retry delay after an informer error (ms, default 500; doubles to 30 s). */
  retryMs?: number;
  /** How often a CRD that is not installed is looked for again (ms, default 10 s). */
  missingCrdRetryMs?: number;
  /** Defaults to WATCHED_RESOURCES. */
  resources?: readonly WatchedResource[];
}

interface Informer {
  resource: WatchedResource;
  lw: ListWatch<KubernetesObject>;
  synced: boolean;
  /** The last list answered 404: the CRD is not installed. */
  missing: boolean;
  failures: number;
  retry: NodeJS.Timeout | undefined;
  onSynced: () => void;
  whenSynced: Promise<void>;
}

interface RawList {
  metadata?: { resourceVersion?: string };
  items?: KubernetesObject[];
}

/** `ns/name` or `name`: the order of the snapshot's arrays. */
function sortKey(o: KubeObject): string {
  return `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

/** The plain object as the translator reads it: kind and apiVersion set (list items lack them), managedFields dropped. */
export function normalizeObject(raw: KubernetesObject, r: WatchedResource): KubeObject {
  const { managedFields: _drop, ...metadata } = (raw.metadata ?? {}) as Record<string, unknown>;
  return { ...(raw as object), apiVersion: apiVersionOf(r), kind: r.kind, metadata } as unknown as KubeObject;
}

/** Events: snapshot, informer-error. */
export class KubeProvider extends EventEmitter {
  readonly client: KubeClient;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly retryMs: number;
  private readonly missingCrdRetryMs: number;
  private readonly informers: Informer[];
  private timer: NodeJS.Timeout | undefined;
  private firstPending = 0;
  private started = false;
  private closed = false;
  private version = 0;
  private cached: { version: number; snapshot: ClusterSnapshot } | undefined;

  constructor(opts: KubeProviderOptions) {
    super();
    this.client = opts.client;
    this.log = opts.logger ?? makeLogger("controller.provider.kube");
    this.debounceMs = opts.debounceMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 1000;
    this.retryMs = opts.retryMs ?? 500;
    this.missingCrdRetryMs = opts.missingCrdRetryMs ?? 10_000;
    const watch = new Watch(this.client.config);
    this.informers = (opts.resources ?? WATCHED_RESOURCES).map((resource) =>
      this.makeInformer(resource, watch),
    );
  }

  private makeInformer(resource: WatchedResource, watch: Watch): Informer {
    const path = collectionPath(resource);
    let onSynced = () => {};
    const whenSynced = new Promise<void>((resolve) => {
      onSynced = resolve;
    });
    const inf = {
      resource,
      synced: false,
      missing: false,
      failures: 0,
      retry: undefined,
      onSynced,
      whenSynced,
    } as Informer;
    const setMissing = (missing: boolean) => {
      if (inf.missing === missing) return;
      inf.missing = missing;
      if (missing)
        this.log.info({ resource: path }, "resource not served (CRD not installed?); looking again later");
      // The kind's objects leave (or rejoin) the snapshot.
      this.changed();
    };
    const lw = new ListWatch<KubernetesObject>(
      path,
      watch,
      async () => {
        let l: RawList;
        try {
          l = await this.client.get<RawList>(path);
        } catch (e) {
          // A CRD that is not installed counts as listed, with no objects; the
          // error stops this ListWatch and onInformerError looks again later.
          if (resource.optional && isNotFound(e)) {
            setMissing(true);
            this.markSynced(inf);
          }
          throw e;
        }
        setMissing(false);
        this.markSynced(inf);
        inf.failures = 0;
        // biome-ignore lint/suspicious/noExplicitAny: ListWatch's list type is the typed client's
        return l as any;
      },
      false,
    );
    inf.lw = lw;
    lw.on("change", () => this.changed());
    lw.on("error", (err: unknown) => this.onInformerError(inf, err));
    return inf;
  }

  private markSynced(inf: Informer): void {
    if (inf.synced) return;
    inf.synced = true;
    inf.onSynced();
  }

  private onInformerError(inf: Informer, err: unknown): void {
    if (this.closed) return;
    let delay: number;
    if (
      inf.missing ||
      (inf.resource.optional && err instanceof Error && (err as { statusCode?: number }).statusCode === 404)
    ) {
      delay = this.missingCrdRetryMs;
    } else {
      inf.failures++;
      delay = Math.min(this.retryMs * 2 ** (inf.failures - 1), 30_000);
      const code =
        err instanceof KubeApiError ? err.statusCode : (err as { statusCode?: number })?.statusCode;
      this.log.warn(
        {
          resource: collectionPath(inf.resource),
          err: (err as Error)?.message ?? String(err),
          code,
          retryInMs: delay,
        },
        "informer failed; retrying",
      );
      if (inf.failures === 1) this.emit("informer-error", err);
    }
    clearTimeout(inf.retry);
    inf.retry = setTimeout(() => {
      inf.retry = undefined;
      if (!this.closed) inf.lw.start().catch((e) => this.onInformerError(inf, e));
    }, delay);
    inf.retry.unref?.();
  }

  /** Lists every resource once and starts watching; resolves when all have listed (retrying failures meanwhile). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const inf of this.informers) inf.lw.start().catch((e) => this.onInformerError(inf, e));
    await Promise.all(this.informers.map((i) => i.whenSynced));
    if (this.closed) return;
    this.log.info({ resources: this.informers.length }, "informers synced");
    this.version++;
    this.emit("snapshot", this.snapshot());
  }

  /** Stops every watch. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const inf of this.informers) {
      clearTimeout(inf.retry);
      await inf.lw.stop();
      // start() may be waiting for informers that will never list now.
      inf.onSynced();
    }
  }

  /** Input problems found by the provider: none here, the API server validates objects (parity with the local provider). */
  errors(): ObjectError[] {
    return [];
  }

  /** True once every informer has listed once. */
  isSynced(): boolean {
    return this.informers.every((i) => i.synced);
  }

  /** Resources whose CRD is not installed (by kind). */
  missingKinds(): string[] {
    return this.informers.filter((i) => i.missing).map((i) => i.resource.kind);
  }

  /** The cached object, as in the snapshot. */
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const inf = this.informers.find((i) => i.resource.kind === kind);
    if (!inf || inf.missing) return undefined;
    const raw = inf.lw.get(name, inf.resource.namespaced ? namespace : undefined);
    return raw ? normalizeObject(raw, inf.resource) : undefined;
  }

  /** Everything the informers hold, sorted by namespace/name within each kind. */
  snapshot(): ClusterSnapshot {
    if (this.cached?.version === this.version) return this.cached.snapshot;
    const s = emptySnapshot();
    for (const inf of this.informers) {
      const objs = inf.missing ? [] : inf.lw.list().map((o) => normalizeObject(o, inf.resource));
      objs.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
      (s[inf.resource.field] as KubeObject[]) = objs;
    }
    this.cached = { version: this.version, snapshot: s };
    return s;
  }

  private changed(): void {
    this.version++;
    if (!this.isSynced() || this.closed) return;
    const now = Date.now();
    if (!this.timer) this.firstPending = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstPending + this.maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.emit("snapshot", this.snapshot());
    }, wait);
  }
}

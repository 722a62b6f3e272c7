// HTTP/2 session pool for HBONE clients. Sessions are keyed by
// (source identity, source IP, destination identity, destination IP[:port]),
// as DESIGN.md says: a session carries only streams that would present the
// same certificate to the same peer. Each session carries at most
// maxStreamsPerSession concurrent streams (or fewer if the peer says so);
// when every session of a key is full, another one is opened. A slot is
// reserved synchronously, so concurrent callers share a session being
// established instead of each opening their own.
import type { ClientHttp2Session } from "node:http2";

export interface PoolKey {
  srcIdentity: string;
  srcIp: string;
  dstIdentity: string;
  dstIp: string;
  dstPort: number;
}

export function poolKeyString(k: PoolKey): string {
  return `${k.srcIdentity}|${k.srcIp}|${k.dstIdentity}|${k.dstIp}|${k.dstPort}`;
}

export interface PooledSession {
  readonly key: string;
  readonly id: number;
  /** Resolves once the TLS handshake and HTTP/2 preface are done. */
  readonly ready: Promise<ClientHttp2Session>;
  session?: ClientHttp2Session;
  /** Streams reserved or open on this session. */
  active: number;
  /** No new streams (GOAWAY received, error, closing). */
  draining: boolean;
  /** Epoch ms from which the session takes no new stream: the earlier certificate notAfter of its two ends. */
  validUntil?: number;
  idleTimer?: NodeJS.Timeout;
}

export interface Lease {
  readonly entry: PooledSession;
  released: boolean;
}

export interface SessionPoolOptions {
  /** Establishes one session for a key; the pool owns it afterwards. */
  open: (key: PoolKey) => Promise<ClientHttp2Session>;
  maxStreamsPerSession: number;
  /** Close sessions that carried no stream for this long. */
  idleTimeoutMs: number;
  onSessionCountChange?: (count: number) => void;
  /**
   * When a session's certificates stop authenticating new streams (epoch ms).
   * Checked at acquire: the opener's close timer may run late on a busy loop.
   */
  validUntil?: (session: ClientHttp2Session) => number | undefined;
}

export class HboneSessionPool {
  private readonly byKey = new Map<string, PooledSession[]>();
  private nextId = 1;
  private count = 0;
  private closed = false;

  constructor(private readonly opts: SessionPoolOptions) {}

  /** Reserves a stream slot on a session for `key`, opening a session if all are full. */
  acquire(key: PoolKey): Lease {
    if (this.closed) throw new Error("HBONE session pool is closed");
    const ks = poolKeyString(key);
    let list = this.byKey.get(ks);
    if (!list) {
      list = [];
      this.byKey.set(ks, list);
    }
    for (const e of list) {
      // A session closed by its owner (certificate expiry) takes no new streams.
      if (e.draining || e.session?.closed || e.active >= this.capacity(e)) continue;
      // Nor does one whose certificate expired before that close ran (a busy event loop).
      if (e.validUntil !== undefined && Date.now() >= e.validUntil) continue;
      return this.lease(e);
    }
    const entry = this.openEntry(ks, key);
    list.push(entry);
    return this.lease(entry);
  }

  /** Gives a slot back; an emptied session starts its idle timer. */
  release(lease: Lease): void {
    if (lease.released) return;
    lease.released = true;
    const e = lease.entry;
    e.active--;
    if (e.active === 0) {
      if (e.draining) this.remove(e, true);
      else if (!this.closed) {
        e.idleTimer = setTimeout(() => this.remove(e, true), this.opts.idleTimeoutMs);
        e.idleTimer.unref();
      }
    }
  }

  /** Sessions per key and streams, for metrics and the admin dump. */
  stats(): { sessions: number; streams: number; keys: number } {
    let streams = 0;
    for (const list of this.byKey.values()) for (const e of list) streams += e.active;
    return { sessions: this.count, streams, keys: this.byKey.size };
  }

  sessionsFor(key: PoolKey): readonly PooledSession[] {
    return this.byKey.get(poolKeyString(key)) ?? [];
  }

  /** Stops new streams; idle sessions close now, busy ones once their streams end (GOAWAY). */
  close(): void {
    this.closed = true;
    for (const list of [...this.byKey.values()]) {
      for (const e of [...list]) {
        e.draining = true;
        if (e.active === 0) this.remove(e, true);
        else e.session?.close();
      }
    }
  }

  /** Destroys every session now. */
  destroy(): void {
    this.closed = true;
    for (const list of [...this.byKey.values()]) for (const e of [...list]) this.remove(e, false, true);
  }

  private capacity(e: PooledSession): number {
    const remote = e.session?.remoteSettings?.maxConcurrentStreams;
    return remote !== undefined && remote > 0
      ? Math.min(remote, this.opts.maxStreamsPerSession)
      : this.opts.maxStreamsPerSession;
  }

  private lease(e: PooledSession): Lease {
    if (e.idleTimer) {
      clearTimeout(e.idleTimer);
      e.idleTimer = undefined;
    }
    e.active++;
    return { entry: e, released: false };
  }

  private openEntry(ks: string, key: PoolKey): PooledSession {
    const ready = this.opts.open(key);
    const entry: PooledSession = { key: ks, id: this.nextId++, ready, active: 0, draining: false };
    this.count++;
    this.opts.onSessionCountChange?.(this.count);
    ready.then(
      (session) => {
        entry.session = session;
        const until = this.opts.validUntil?.(session);
        if (until !== undefined) entry.validUntil = until;
        const drain = () => {
          entry.draining = true;
        };
        session.once("goaway", drain);
        session.once("error", drain);
        session.once("close", () => this.remove(entry, false));
        if (entry.draining) this.remove(entry, entry.active === 0, entry.active === 0);
      },
      () => this.remove(entry, false),
    );
    return entry;
  }

  private remove(e: PooledSession, closeSession: boolean, destroySession = false): void {
    if (e.idleTimer) {
      clearTimeout(e.idleTimer);
      e.idleTimer = undefined;
    }
    e.draining = true;
    const list = this.byKey.get(e.key);
    if (list) {
      const i = list.indexOf(e);
      if (i >= 0) {
        list.splice(i, 1);
        this.count--;
        this.opts.onSessionCountChange?.(this.count);
      }
      if (list.length === 0) this.byKey.delete(e.key);
    }
    if (destroySession) e.session?.destroy();
    else if (closeSession) e.session?.close();
  }
}

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection does it: every replica serves xDS and the CA, only the leader
// writes status and deploys waypoints.
//
// - The holder renews the Lease every retryPeriod; a write conflict (409) means
//   someone else wrote first, and we re-read.
// - Another holder's lease counts as expired when the record has not changed
//   for leaseDuration by OUR clock (the time we first saw that record), so
//   clock skew between replicas does not matter.
// - A leader that cannot renew for renewDeadline stops leading (before the
//   others may take over), and close() releases the lease so a successor
//   takes over at its next retry instead of after leaseDuration.
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import { isConflict, isNotFound, type KubeClient } from "./client.js";

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  /** Lease name (default ambit-controller). */
  name?: string;
  /** This replica's identity (default: hostname + pid). */
  identity?: string;
  /** Seconds (default 15). */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long steps down (ms, default 10 000). */
  renewDeadlineMs?: number;
  /** Attempt period (ms, default 2000). */
  retryPeriodMs?: number;
  logger?: Logger;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Events: started-leading, stopped-leading, leader. */
export class LeaderElector extends EventEmitter {
  readonly identity: string;
  readonly namespace: string;
  readonly name: string;
  private readonly client: KubeClient;
  private readonly leaseSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private leading = false;
  private observed: { key: string; at: number } | undefined;
  private observedHolder: string | undefined;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(opts: LeaderElectionOptions) {
    super();
    this.client = opts.client;
    this.namespace = opts.namespace;
    this.name = opts.name ?? "ambit-controller";
    this.identity = opts.identity ?? `${hostname()}_${process.pid}`;
    this.leaseSeconds = opts.leaseDurationSeconds ?? 15;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2000;
    this.log = opts.logger ?? makeLogger("controller.leader");
    if (this.renewDeadlineMs >= this.leaseSeconds * 1000)
      throw new Error("leader election: renewDeadline must be shorter than leaseDuration");
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder we last saw (undefined when none). */
  leader(): string | undefined {
    return this.observedHolder;
  }

  /** Starts trying to acquire; returns at once (watch the events or isLeader()). */
  start(): void {
    if (this.timer || this.closed) return;
    const tick = () => {
      this.running = this.attempt().finally(() => {
        this.running = undefined;
        if (!this.closed) this.timer = setTimeout(tick, this.retryPeriodMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops trying; a leader releases the lease so a successor takes over at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
    if (this.leading) {
      try {
        await this.release();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, "could not release the lease");
      }
      this.setLeading(false);
    }
  }

  private path(withName: boolean): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases${withName ? `/${this.name}` : ""}`;
  }

  private setLeading(v: boolean): void {
    if (this.leading === v) return;
    this.leading = v;
    this.log.info(
      { identity: this.identity, lease: `${this.namespace}/${this.name}` },
      v ? "started leading" : "stopped leading",
    );
    this.emit(v ? "started-leading" : "stopped-leading");
  }

  private observe(spec: LeaseSpec): void {
    const holder = spec.holderIdentity || undefined;
    const key = `${holder}|${spec.renewTime}|${spec.leaseTransitions}`;
    if (this.observed?.key !== key) this.observed = { key, at: Date.now() };
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      this.emit("leader", holder);
    }
  }

  private async attempt(): Promise<void> {
    const now = new Date();
    try {
      const ok = await this.tryAcquireOrRenew(now);
      if (ok) {
        this.lastRenew = Date.now();
        this.setLeading(true);
        return;
      }
      this.setLeading(false);
    } catch (e) {
      if (!isConflict(e)) this.log.warn({ err: (e as Error).message }, "lease update failed");
      // Step down before others may take over, not at the first hiccup.
      if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs) this.setLeading(false);
    }
  }

  private async tryAcquireOrRenew(now: Date): Promise<boolean> {
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.path(true));
    } catch (e) {
      if (!isNotFound(e)) throw e;
      const created: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.name, namespace: this.namespace },
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: this.leaseSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      const got = await this.client.request<Lease>({ method: "POST", path: this.path(false), body: created });
      this.observe(got.spec);
      return true;
    }
    const spec = lease.spec ?? {};
    this.observe(spec);
    const holder = spec.holderIdentity || undefined;
    const mine = holder === this.identity;
    const durationMs = (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000;
    const expired = !holder || (this.observed !== undefined && this.observed.at + durationMs <= Date.now());
    if (!mine && !expired) return false;
    const next: LeaseSpec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseSeconds,
      acquireTime: mine ? spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    // resourceVersion makes this a compare-and-swap: a 409 means we lost a race.
    const got = await this.client.request<Lease>({
      method: "PUT",
      path: this.path(true),
      body: { ...lease, spec: next },
    });
    this.observe(got.spec);
    return true;
  }

  private async release(): Promise<void> {
    const lease = await this.client.get<Lease>(this.path(true));
    if (lease.spec?.holderIdentity !== this.identity) return;
    const now = microTime(new Date());
    await this.client.request({
      method: "PUT",
      path: this.path(true),
      body: {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
        },
      },
    });
  }
}

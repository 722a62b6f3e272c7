// One upstream cluster's live state: endpoints (kept across config updates
// when ip:port is unchanged, so LB and outlier state survive), the picker,
// the connection-pool circuit breaker and outlier detection.
import type { ClusterPolicy, WaypointCluster, WaypointProtocol } from "../core/model/waypoint.js";
import { EndpointState } from "./lb/endpoint.js";
import { type Outcome, recordOutcome } from "./lb/outlier.js";
import { makePicker, type Picker, type PickInput } from "./lb/pickers.js";

export class ClusterState {
  readonly name: string;
  protocol: WaypointProtocol = "http";
  policy: ClusterPolicy = {};
  endpoints: EndpointState[] = [];
  private picker: Picker = makePicker(undefined);
  private healthyCache: EndpointState[] = [];
  /** ms timestamp when healthyCache must be recomputed (an ejection expires). */
  private healthyUntil = 0;
  private dirty = true;
  /** Requests holding a connection slot / waiting for one. */
  inflight = 0;

  constructor(c: WaypointCluster) {
    this.name = c.name;
    this.update(c);
  }

  update(c: WaypointCluster): void {
    const old = new Map(this.endpoints.map((e) => [e.key, e]));
    this.endpoints = c.endpoints.map((e) => {
      const fresh = EndpointState.from(e);
      const kept = old.get(fresh.key);
      // Same address, other pod (workload or identity changed): a new endpoint, so
      // its metric labels (cached per endpoint object) are the new pod's.
      if (
        kept &&
        kept.workload === fresh.workload &&
        kept.namespace === fresh.namespace &&
        kept.identity === fresh.identity
      ) {
        kept.weight = fresh.weight;
        return kept;
      }
      return fresh;
    });
    this.protocol = c.protocol;
    const lbChanged = JSON.stringify(this.policy.loadBalancer) !== JSON.stringify(c.policy?.loadBalancer);
    this.policy = c.policy ?? {};
    if (lbChanged) this.picker = makePicker(this.policy.loadBalancer);
    this.picker.reset(this.endpoints);
    this.dirty = true;
  }

  healthy(now: number): EndpointState[] {
    if (!this.dirty && now < this.healthyUntil) return this.healthyCache;
    let next = Number.POSITIVE_INFINITY;
    const h: EndpointState[] = [];
    for (const e of this.endpoints) {
      if (e.ejectedUntil > now) next = Math.min(next, e.ejectedUntil);
      else h.push(e);
    }
    // Panic mode as Envoy: with everything ejected, use everything.
    this.healthyCache = h.length ? h : this.endpoints;
    this.healthyUntil = next;
    this.dirty = false;
    return this.healthyCache;
  }

  /** Picks an endpoint, avoiding `avoid` (the previous attempt's) when another exists. */
  pick(input: PickInput, avoid?: EndpointState): EndpointState | undefined {
    const h = this.healthy(Date.now());
    if (h.length === 0) return undefined;
    let e = this.picker.pick(h, input);
    if (avoid && e === avoid && h.length > 1 && input.hashKey === undefined) e = this.picker.pick(h, input);
    return e;
  }

  private readonly pending: (() => void)[] = [];

  /**
   * Circuit breaker: true → go; a promise → queued behind maxConnections
   * (resolves when a slot frees); false → overflow, answer 503.
   */
  acquire(): boolean | Promise<void> {
    const cp = this.policy.connectionPool;
    if (cp?.maxConnections !== undefined && this.inflight >= cp.maxConnections) {
      if (this.pending.length >= (cp.maxPendingRequests ?? 0)) return false;
      return new Promise((resolve) => this.pending.push(resolve));
    }
    this.inflight++;
    return true;
  }

  /** For mirrors: a slot now or nothing. */
  tryAcquire(): boolean {
    const cp = this.policy.connectionPool;
    if (cp?.maxConnections !== undefined && this.inflight >= cp.maxConnections) return false;
    this.inflight++;
    return true;
  }

  release(): void {
    const next = this.pending.shift();
    if (next)
      next(); // the slot passes to the next waiter
    else this.inflight--;
  }

  report(ep: EndpointState, outcome: Outcome): void {
    if (recordOutcome(this.policy.outlierDetection, ep, outcome, this.endpoints, Date.now(), this.name))
      this.dirty = true;
  }
}

// Load-balancing pickers. Each picks from the cluster's current healthy list
// (never empty when called). Pure apart from their own cursor and Math.random.
import type { LoadBalancer } from "../../core/model/waypoint.js";
import { HashRing } from "./consistent-hash.js";
import type { EndpointState } from "./endpoint.js";

export interface PickInput {
  /** Consistent-hash key, when the policy hashes (header, cookie or source IP value). */
  hashKey?: string;
}

export interface Picker {
  pick(healthy: EndpointState[], input: PickInput): EndpointState;
  /** Called when the endpoint set changes. */
  reset(all: EndpointState[]): void;
}

function weighted(healthy: EndpointState[]): boolean {
  const w = healthy[0]!.weight;
  for (let i = 1; i < healthy.length; i++) if (healthy[i]!.weight !== w) return true;
  return false;
}

function weightedRandom(healthy: EndpointState[]): EndpointState {
  let total = 0;
  for (const e of healthy) total += e.weight;
  let r = Math.random() * total;
  for (const e of healthy) {
    r -= e.weight;
    if (r < 0) return e;
  }
  return healthy[healthy.length - 1]!;
}

export class RoundRobinPicker implements Picker {
  private next = 0;
  pick(healthy: EndpointState[]): EndpointState {
    if (healthy.length > 1 && weighted(healthy)) return weightedRandom(healthy);
    const e = healthy[this.next % healthy.length]!;
    this.next = (this.next + 1) % 1_000_000_007;
    return e;
  }
  reset(): void {
    this.next = Math.floor(Math.random() * 1000);
  }
}

export class RandomPicker implements Picker {
  pick(healthy: EndpointState[]): EndpointState {
    return weighted(healthy) ? weightedRandom(healthy) : healthy[Math.floor(Math.random() * healthy.length)]!;
  }
  reset(): void {}
}

/** Power of two choices: two random endpoints, the one with fewer requests in flight wins. */
export class LeastRequestPicker implements Picker {
  pick(healthy: EndpointState[]): EndpointState {
    if (healthy.length === 1) return healthy[0]!;
    const a = healthy[Math.floor(Math.random() * healthy.length)]!;
    let b = healthy[Math.floor(Math.random() * healthy.length)]!;
    if (a === b) b = healthy[(healthy.indexOf(a) + 1) % healthy.length]!;
    // weights scale the comparison: active / weight
    return a.active / a.weight <= b.active / b.weight ? a : b;
  }
  reset(): void {}
}

export class ConsistentHashPicker implements Picker {
  private ring = new HashRing([]);
  private fallback = new RandomPicker();
  pick(healthy: EndpointState[], input: PickInput): EndpointState {
    if (input.hashKey === undefined) return this.fallback.pick(healthy);
    return this.ring.lookup(input.hashKey, healthy) ?? this.fallback.pick(healthy);
  }
  reset(all: EndpointState[]): void {
    this.ring = new HashRing(all);
  }
}

export function makePicker(lb: LoadBalancer | undefined): Picker {
  switch (lb?.type) {
    case "LEAST_REQUEST":
      return new LeastRequestPicker();
    case "RANDOM":
      return new RandomPicker();
    case "CONSISTENT_HASH":
      return new ConsistentHashPicker();
    default:
      return new RoundRobinPicker();
  }
}

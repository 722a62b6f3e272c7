// A hash ring (Ketama-style, FNV-1a 32-bit) over all endpoints, ejected ones
// included, so that an ejection moves only that endpoint's keys: lookups walk
// clockwise past endpoints that are not in the healthy list.
import type { EndpointState } from "./endpoint.js";

const VNODES = 64;

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: EndpointState[];
  constructor(endpoints: EndpointState[]) {
    const entries: [number, EndpointState][] = [];
    for (const e of endpoints) {
      const n = VNODES * Math.max(1, Math.min(e.weight, 100));
      for (let i = 0; i < n; i++) entries.push([fnv1a(`${e.key}#${i}`), e]);
    }
    entries.sort((a, b) => a[0] - b[0]);
    this.points = Uint32Array.from(entries.map((x) => x[0]));
    this.owners = entries.map((x) => x[1]);
  }

  lookup(key: string, healthy: EndpointState[]): EndpointState | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const h = fnv1a(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    for (let i = 0; i < n; i++) {
      const e = this.owners[(lo + i) % n]!;
      if (healthy.includes(e)) return e;
    }
    return undefined;
  }
}

// Turns the model (after each translation) into the Any resources that
// DeltaAdsServer.publish() takes, encoding only what changed: an object whose
// content is the same as last time keeps its Any (same object), so publish()
// recognises it without comparing or hashing bytes. With 10,000 pods a
// full re-encode costs most of a second; this makes an incremental change
// cost a structural comparison per object (about 1 µs for a pod, five times
// cheaper than the JSON.stringify it replaces).
//
// The previous objects are kept and compared with the next ones, so items
// must not be changed in place once built (the translator builds new objects
// on every run). The same object passed again is re-encoded rather than
// trusted: it may have been changed in place.
import type { Any } from "@bufbuild/protobuf/wkt";

export interface ResourceSet {
  resources: Map<string, Any>;
  aliases: Map<string, string[]>;
}

interface Entry<T> {
  item: T;
  any: Any;
  aliases: string[];
}

/** Deep equality of plain JSON-like values; an undefined property counts as absent (as in JSON). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    n++;
    if (!sameJson(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}

export class ResourceCache<T> {
  private entries = new Map<string, Entry<T>>();

  constructor(
    private readonly nameOf: (x: T) => string,
    private readonly encode: (x: T) => Any,
    private readonly aliasesOf: (x: T) => string[] = () => [],
  ) {}

  /**
   * The full set for publish(). Without `onError`, throws what `encode` throws
   * (naming the object and field); with it, an object that cannot be encoded
   * is reported and left out (keeping its last good encoding would publish
   * something the model no longer says).
   */
  build(items: Iterable<T>, onError?: (x: T, err: Error) => void): ResourceSet {
    const next = new Map<string, Entry<T>>();
    const resources = new Map<string, Any>();
    const aliases = new Map<string, string[]>();
    for (const x of items) {
      const name = this.nameOf(x);
      const old = this.entries.get(name);
      let entry = old;
      if (entry && entry.item !== x && sameJson(entry.item, x)) {
        // Keep the new object (the old translation can be collected), with the same Any.
        entry.item = x;
      } else {
        try {
          entry = { item: x, any: this.encode(x), aliases: this.aliasesOf(x) };
        } catch (err) {
          if (!onError) throw err;
          onError(x, err as Error);
          continue;
        }
      }
      next.set(name, entry);
      resources.set(name, entry.any);
      if (entry.aliases.length > 0) aliases.set(name, entry.aliases);
    }
    this.entries = next;
    return { resources, aliases };
  }
}

// Turns the model (after each translation) into the Any resources that
// DeltaAdsServer.publish() takes, encoding only what changed: an object whose
// content is the same as last time keeps its Any (same object), so publish()
// recognises it without comparing or hashing bytes. With 10,000 pods a
// full re-encode costs most of a second; this makes an incremental change
// cost a JSON.stringify per object.
import type { Any } from "@bufbuild/protobuf/wkt";

export interface ResourceSet {
  resources: Map<string, Any>;
  aliases: Map<string, string[]>;
}

export class ResourceCache<T> {
  private entries = new Map<string, { key: string; any: Any; aliases: string[] }>();

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
    const next = new Map<string, { key: string; any: Any; aliases: string[] }>();
    const resources = new Map<string, Any>();
    const aliases = new Map<string, string[]>();
    for (const x of items) {
      const name = this.nameOf(x);
      const key = JSON.stringify(x);
      const old = this.entries.get(name);
      let entry = old;
      if (!entry || entry.key !== key) {
        try {
          entry = { key, any: this.encode(x), aliases: this.aliasesOf(x) };
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

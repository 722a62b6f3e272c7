// What publish() does to one type's published set, without the streams: the
// new entries (encoded once, shared by every stream), the alias index, and
// which names changed. Pure over its TypeState argument; server.ts marks the
// streams dirty with the names this returns.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { PublishedResource } from "./connection-info.js";
import { encodeResource, resourceVersion } from "./response-encoding.js";
import type { TypeState } from "./stream-state.js";

const NO_ALIASES: readonly string[] = Object.freeze([]);

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Makes `resources` (with their aliases) the published set of `state`. Returns
 * the names that changed or went away, or undefined when nothing did and the
 * type had been published before (no push needed).
 */
export function updatePublished(
  state: TypeState,
  resources: ReadonlyMap<string, Any>,
  aliases?: ReadonlyMap<string, readonly string[]>,
): string[] | undefined {
  const prev = state.entries;
  // One pass that only reads: an unchanged resource (the same Any and aliases
  // objects, as ModelPublisher passes them) costs two lookups, and the map of
  // entries is copied only when something changed (callers of resources() keep
  // the map they got).
  const updates: PublishedResource[] = [];
  const changed: string[] = [];
  let found = 0;
  let aliasesChanged = false;
  for (const [name, any] of resources) {
    const old = prev.get(name);
    const al = aliases?.get(name) ?? NO_ALIASES;
    if (old !== undefined) {
      found++;
      if (old.any === any && old.aliases === al) continue;
    }
    const sameAliases = old !== undefined && sameStrings(old.aliases, al);
    // Same bytes under a new Any object (a fresh translation), or the same version: no new encoding.
    if (
      old !== undefined &&
      sameAliases &&
      ((old.any.typeUrl === any.typeUrl && Buffer.compare(old.any.value, any.value) === 0) ||
        old.version === resourceVersion(any, al))
    ) {
      // Equal content: hold the new objects, so that the next publish of them is recognised by identity.
      old.any = any;
      old.aliases = al;
      continue;
    }
    const version = resourceVersion(any, al);
    const encoded = encodeResource(name, version, al, any);
    // Kept by reference, as the Any is: neither may be changed after publish().
    updates.push({ name, version, aliases: al, any, encoded });
    if (!sameAliases) aliasesChanged = true;
    changed.push(name);
  }
  const removed: string[] = [];
  if (found < prev.size) {
    for (const [name, e] of prev) {
      if (resources.has(name)) continue;
      removed.push(name);
      changed.push(name);
      if (e.aliases.length > 0) aliasesChanged = true;
    }
  }
  if (updates.length > 0 || removed.length > 0) {
    const next = new Map(prev);
    for (const e of updates) next.set(e.name, e);
    for (const name of removed) next.delete(name);
    state.entries = next;
  }
  if (aliasesChanged) {
    state.aliases = new Map();
    for (const e of state.entries.values()) for (const a of e.aliases) state.aliases.set(a, e.name);
  }
  const first = !state.published;
  state.published = true;
  return changed.length === 0 && !first ? undefined : changed;
}

// Kubernetes objects for fuzzing: a pool of valid ones (every object of the
// translate golden cases and the examples, so each kind and most fields are
// covered), and mutations that push them outside their schemas: a field
// replaced by a value of another JSON type, removed, or a list emptied.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { parseAllDocuments } from "yaml";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type RawObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string } & Record<string, Json>;
} & Record<string, Json>;

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e) && e !== "facts.yaml") out.push(p);
  }
  return out.sort();
}

/** Every object (with a kind and a string name) in the golden inputs and examples. */
export function validObjectPool(root = process.cwd()): RawObject[] {
  const pool: RawObject[] = [];
  for (const dir of ["test/fixtures/translate", "test/fixtures/waypoint-translate", "examples"]) {
    let files: string[];
    try {
      files = yamlFiles(join(root, dir));
    } catch {
      continue;
    }
    for (const f of files) {
      for (const doc of parseAllDocuments(readFileSync(f, "utf8"))) {
        if (doc.errors.length) continue;
        const o = doc.toJS() as RawObject | null;
        if (o && typeof o.kind === "string" && typeof o.metadata?.name === "string") pool.push(o);
      }
    }
  }
  return pool;
}

/** Paths to every value below `spec`, `status`, `metadata.labels` and `metadata.annotations` (names stay). */
export function mutablePaths(o: Json, prefix: (string | number)[] = [], top = true): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (o === null || typeof o !== "object") return out;
  const entries: [string | number, Json][] = Array.isArray(o) ? o.map((v, i) => [i, v]) : Object.entries(o);
  for (const [k, v] of entries) {
    if (top && !["spec", "status", "metadata", "rules", "data"].includes(String(k))) continue;
    const path = [...prefix, k];
    if (top && k === "metadata") {
      for (const sub of ["labels", "annotations"]) {
        const m = (v as Record<string, Json>)?.[sub];
        if (m !== undefined) out.push([...path, sub], ...mutablePaths(m, [...path, sub], false));
      }
      continue;
    }
    out.push(path, ...mutablePaths(v, path, false));
  }
  return out;
}

/** A JSON value of any type (small). */
export const anyJson: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -70_000, max: 70_000 }),
  fc.constantFrom(0, -1, 65535, 65536, 1.5, Number.MAX_SAFE_INTEGER),
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    "",
    "*",
    "-",
    "0",
    "80",
    "http",
    "10.0.0.1",
    "::1",
    "10.0.0.0/33",
    "a".repeat(300),
    "ambient",
    "STRICT",
  ),
  fc.constant([] as Json[]),
  fc.constant({} as Json),
  fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.constant(null)), {
    maxLength: 3,
  }) as fc.Arbitrary<Json>,
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()), {
    maxKeys: 2,
  }) as fc.Arbitrary<Json>,
);

export interface Mutation {
  /** Which path (modulo the number of paths). */
  at: number;
  /** Replace with this value, or delete when undefined. */
  value: Json | undefined;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  value: fc.option(anyJson, { nil: undefined, freq: 6 }),
});

/** Applies mutations to a deep copy; paths are recomputed after each (earlier mutations may remove later paths). */
export function mutate(o: RawObject, muts: Mutation[]): RawObject {
  const copy = structuredClone(o);
  for (const m of muts) {
    const paths = mutablePaths(copy as unknown as Json);
    if (paths.length === 0) break;
    const path = paths[m.at % paths.length]!;
    let parent = copy as unknown as Record<string | number, Json>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
    const last = path[path.length - 1]!;
    if (m.value === undefined) {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else parent[last] = m.value;
  }
  return copy;
}

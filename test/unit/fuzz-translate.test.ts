// Fuzzing the translator with Kubernetes objects inside and outside their
// schemas: every object of the golden cases and examples, mutated (a field
// replaced by a value of another JSON type, removed, a list emptied).
//
// Directly (objects the schemas admit, as the kube provider hands them over
// after the API server checked them) and through the local provider (any
// object: YAML text → parseFile → assembleSnapshot, which validates
// first), the properties are: nothing
// throws; the same input gives the same output; every error and warning is an
// ObjectError naming the kind and name of the object (and, for a bad field,
// the field); and everything translated can be encoded for xDS (the
// controller's publish step has no second chance).
import fc from "fast-check";
import t from "tap";
import { stringify } from "yaml";
import { assembleSnapshot, emptyFacts, parseFile } from "../../controller/provider/local/index.js";
import {
  CLUSTER_SCOPED_KINDS,
  type ClusterSnapshot,
  emptySnapshot,
  SNAPSHOT_FIELD_BY_KIND,
} from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import { translateWaypoints } from "../../controller/translate/waypoint.js";
import { ObjectError } from "../../core/errors/errors.js";
import { setLevel } from "../../core/telemetry/logger.js";
import { serviceToAddress, workloadToAddress } from "../../core/xds/codec-address.js";
import { policyToProto } from "../../core/xds/codec-authz.js";
import { fuzz } from "../fuzz/harness.js";
import { type Mutation, mutate, mutation, type RawObject, validObjectPool } from "../fuzz/kube-objects.js";

setLevel("error");

const pool = validObjectPool().map((o, i) => {
  // Pods need an IP to become workloads; give those without one an IP that mutations can then break.
  if (o.kind === "Pod" && !o.status)
    return { ...o, status: { podIP: `10.244.${i >> 8}.${i & 255}`, phase: "Running" } };
  return o;
});

type Input = { pick: number; muts: Mutation[] }[];
const input: fc.Arbitrary<Input> = fc.array(
  fc.record({ pick: fc.nat(), muts: fc.array(mutation, { maxLength: 3 }) }),
  { minLength: 1, maxLength: 14 },
);

function objectsOf(inp: Input): RawObject[] {
  const seen = new Set<string>();
  const out: RawObject[] = [];
  for (const { pick, muts } of inp) {
    // Through JSON, as objects arrive from the API server (fast-check may build null-prototype objects).
    const o = JSON.parse(JSON.stringify(mutate(pool[pick % pool.length]!, muts))) as RawObject;
    if (!CLUSTER_SCOPED_KINDS.has(o.kind)) o.metadata.namespace ??= "default";
    const ref = `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    if (seen.has(ref)) continue;
    seen.add(ref);
    out.push(o);
  }
  return out;
}

/** A snapshot as the kube provider builds it: objects by kind, nothing validated. */
function directSnapshot(objects: RawObject[]): ClusterSnapshot {
  const snap = emptySnapshot();
  for (const o of objects) {
    const field = (SNAPSHOT_FIELD_BY_KIND as Record<string, keyof ClusterSnapshot>)[o.kind];
    if (field) (snap[field] as unknown[]).push(o);
  }
  return snap;
}

function checkErrors(where: string, errs: unknown[], file?: string): void {
  for (const e of errs) {
    if (!(e instanceof ObjectError)) throw new Error(`${where}: not an ObjectError: ${String(e)}`);
    if (!e.object.kind) throw new Error(`${where}: error names no kind: ${e.message}`);
    if (!e.object.name) throw new Error(`${where}: error names no object: ${e.message}`);
    if (e.code === "INVALID_FIELD" && !e.field)
      throw new Error(`${where}: INVALID_FIELD names no field: ${e.message}`);
    if (file !== undefined && e.object.file !== file)
      throw new Error(`${where}: error does not name the file: ${e.message}`);
  }
}

/** JSON of a translation, errors as their messages (for determinism checks). */
function canonical(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => (v instanceof ObjectError ? `${v.code} ${v.message}` : v));
}

/** translate + translateWaypoints, checked; returns the canonical form. */
function translateChecked(snapshot: ClusterSnapshot, where: string): string {
  const r = translate(snapshot);
  checkErrors(`${where} errors`, r.errors);
  checkErrors(`${where} warnings`, r.warnings);
  for (const w of r.workloads) workloadToAddress(w);
  for (const s of r.services) serviceToAddress(s);
  for (const p of r.policies) policyToProto(p);
  const wp = translateWaypoints(snapshot, { services: r.services, workloads: r.workloads });
  checkErrors(`${where} waypoint errors`, wp.errors);
  checkErrors(`${where} waypoint warnings`, wp.warnings);
  return canonical({ r, wp });
}

/**
 * Only objects the schemas admit (the local provider's validation stands in
 * for the API server's): the kube provider hands those over unchecked.
 */
function admitted(objects: RawObject[]): RawObject[] {
  return objects.filter((o) => parseFile(stringify(o), "schema-check.yaml").objects.length === 1);
}

function checkDirect(inp: Input): void {
  const objects = admitted(objectsOf(inp));
  const first = translateChecked(directSnapshot(objects), "direct");
  const again = translateChecked(directSnapshot(structuredClone(objects)), "direct (again)");
  if (first !== again) throw new Error("translate is not deterministic");
}

const FILE = "fuzz/input.yaml";

function checkThroughProvider(inp: Input): void {
  const objects = objectsOf(inp);
  const text = objects.map((o) => stringify(o)).join("---\n");
  const parsed = parseFile(text, FILE);
  checkErrors("parseFile", parsed.errors, FILE);
  const { snapshot, errors } = assembleSnapshot([{ file: FILE, objects: parsed.objects }], emptyFacts());
  checkErrors("assembleSnapshot", errors, FILE);
  const first = translateChecked(snapshot, "provider");
  const reparsed = parseFile(text, FILE);
  const again = assembleSnapshot([{ file: FILE, objects: reparsed.objects }], emptyFacts());
  if (canonical(parsed) !== canonical(reparsed)) throw new Error("parseFile is not deterministic");
  if (first !== translateChecked(again.snapshot, "provider (again)"))
    throw new Error("translate is not deterministic");
}

t.test("the pool covers the kinds", async (t) => {
  const kinds = new Set(pool.map((o) => o.kind));
  for (const k of [
    "Namespace",
    "Pod",
    "Service",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "Gateway",
    "HTTPRoute",
  ]) {
    t.ok(kinds.has(k), `pool has ${k}`);
  }
  t.ok(pool.length >= 30, `${pool.length} objects`);
});

t.test("unmutated pool translates with the checks holding", async (t) => {
  const all = pool.map((_, i) => ({ pick: i, muts: [] }));
  t.ok(admitted(objectsOf(all)).length > 100, "most of the pool passes the schemas");
  checkDirect(all);
  checkThroughProvider(all);
  t.pass();
});

t.test("mutated objects the schemas admit, straight into the translator", async (t) => {
  const n = await fuzz({ target: "translate-direct", ci: 120 }, input, checkDirect);
  t.ok(n > 0, `${n} snapshots`);
});

t.test("objects outside their schemas, through the local provider", async (t) => {
  const n = await fuzz({ target: "translate-provider", ci: 120 }, input, checkThroughProvider);
  t.ok(n > 0, `${n} snapshots`);
});

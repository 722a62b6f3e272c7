// One YAML file (multi-document) → the objects of the kinds ambit reads,
// validated and defaulted as the API server would (namespace "default", a
// uid), plus errors that name the file, the object and the field.
import { createHash } from "node:crypto";
import { parseAllDocuments } from "yaml";
import { ObjectError } from "../../../core/errors/errors.js";
import { type AnyObject, API_VERSIONS_BY_KIND, CLUSTER_SCOPED_KINDS, objectRef } from "../objects.js";
import { isObject } from "./field-check.js";
import { validateObject } from "./validate.js";

export interface SourcedObject {
  object: AnyObject;
  /** File path relative to the watched directory (posix separators). */
  file: string;
}

export interface FileParse {
  /** Valid objects, in document order. */
  objects: SourcedObject[];
  /** `Kind ns/name` of objects that were found but refused (the caller may keep their last good version). */
  rejected: string[];
  errors: ObjectError[];
  /** The file itself could not be read as YAML: none of its objects are known. */
  unreadable: boolean;
}

/** A stable uid for an object that has none, so that re-reading yields the same one. */
export function stableUid(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function isKnownKind(kind: string): kind is AnyObject["kind"] {
  return Object.hasOwn(API_VERSIONS_BY_KIND, kind);
}

/** Deeper than any Kubernetes object; deep enough to stop the yaml library's recursion from overflowing the stack. */
export const MAX_YAML_NESTING = 64;

/**
 * An upper bound of a text's nesting: open flow brackets, and per line the
 * indentation plus chained "- " block-sequence entries. Cheap and
 * conservative (brackets inside strings count too); used only as a guard.
 */
export function yamlNestingBound(text: string): number {
  let flow = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) max = Math.max(max, ++flow);
    else if (c === 0x5d || c === 0x7d) flow = Math.max(0, flow - 1);
  }
  for (const line of text.split("\n")) {
    const m = /^( *)((?:- +)*)/.exec(line);
    const indent = m?.[1]?.length ?? 0;
    const dashes = (m?.[2]?.match(/-/g) ?? []).length;
    max = Math.max(max, Math.floor(indent / 2) + dashes);
  }
  return max;
}

/** Parses the text of one file. Never throws. */
export function parseFile(text: string, file: string): FileParse {
  const out: FileParse = { objects: [], rejected: [], errors: [], unreadable: false };
  const depth = yamlNestingBound(text);
  if (depth > MAX_YAML_NESTING) {
    // The yaml library recurses per level; ~1000 levels overflow the stack and
    // can leave V8 unable to continue. Refuse before parsing.
    out.unreadable = true;
    out.errors.push(
      new ObjectError("YAML_PARSE", { kind: "file", name: file, file }, undefined, `nested ${depth} levels deep (at most ${MAX_YAML_NESTING})`),
    );
    return out;
  }
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    out.unreadable = true;
    out.errors.push(new ObjectError("YAML_PARSE", { kind: "file", name: file, file }, undefined, String(e)));
    return out;
  }
  const list = Array.isArray(docs) ? docs : [];
  const raws: { raw: unknown; doc: number }[] = [];
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!;
    if (d.errors.length > 0) {
      const e = d.errors[0]!;
      const pos = e.linePos?.[0];
      const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
      out.unreadable = true;
      out.errors.push(
        new ObjectError(
          "YAML_PARSE",
          { kind: "document", name: `#${i + 1}`, file },
          undefined,
          `YAML syntax error${where}: ${e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}`,
        ),
      );
      continue;
    }
    let raw: unknown;
    try {
      raw = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      out.unreadable = true;
      out.errors.push(
        new ObjectError(
          "YAML_PARSE",
          { kind: "document", name: `#${i + 1}`, file },
          undefined,
          String((e as Error).message),
        ),
      );
      continue;
    }
    raws.push({ raw, doc: i + 1 });
  }
  // A file with a syntax error is taken as a whole or not at all: half a file
  // could silently drop the objects after the error.
  if (out.unreadable) return out;
  for (const { raw, doc } of raws) {
    if (raw === null || raw === undefined) continue;
    if (isObject(raw) && raw.kind === "List" && Array.isArray(raw.items)) {
      raw.items.forEach((item, j) => {
        addObject(out, item, file, `#${doc}.items[${j}]`);
      });
    } else addObject(out, raw, file, `#${doc}`);
  }
  return out;
}

function addObject(out: FileParse, raw: unknown, file: string, docName: string): void {
  if (!isObject(raw)) {
    out.errors.push(
      new ObjectError(
        "INVALID_OBJECT",
        { kind: "document", name: docName, file },
        undefined,
        "is not a mapping (an object with apiVersion, kind, metadata)",
      ),
    );
    return;
  }
  const md = isObject(raw.metadata) ? raw.metadata : undefined;
  const name = typeof md?.name === "string" ? md.name : undefined;
  const kind = raw.kind;
  if (typeof kind !== "string" || kind === "") {
    out.errors.push(
      new ObjectError(
        "INVALID_OBJECT",
        { kind: "document", name: name ?? docName, file },
        "kind",
        "is required",
      ),
    );
    return;
  }
  if (!isKnownKind(kind)) {
    out.errors.push(
      new ObjectError(
        "UNKNOWN_KIND",
        { kind, name, namespace: strOrUndef(md?.namespace), file },
        "kind",
        `kind ${kind} (${String(raw.apiVersion)}) is not read by ambit; ignored`,
      ),
    );
    return;
  }
  if (CLUSTER_SCOPED_KINDS.has(kind)) {
    if (md) delete md.namespace;
  } else if (md && (md.namespace === undefined || md.namespace === null || md.namespace === "")) {
    md.namespace = "default";
  }
  const namespace = strOrUndef(md?.namespace);
  const ref = { kind, namespace, name, file };
  const problems: { field: string; reason: string }[] = [];
  if (typeof raw.apiVersion !== "string") problems.push({ field: "apiVersion", reason: "is required" });
  else if (!API_VERSIONS_BY_KIND[kind].includes(raw.apiVersion)) {
    problems.push({
      field: "apiVersion",
      reason: `must be ${API_VERSIONS_BY_KIND[kind].join(" or ")} for kind ${kind}, got ${raw.apiVersion}`,
    });
  }
  problems.push(...validateObject(kind, raw));
  if (problems.length > 0) {
    for (const p of problems) out.errors.push(new ObjectError("INVALID_FIELD", ref, p.field, p.reason));
    if (name !== undefined) out.rejected.push(`${kind} ${namespace ? `${namespace}/` : ""}${name}`);
    return;
  }
  const object = raw as unknown as AnyObject;
  object.metadata.uid ??= stableUid(objectRef(object));
  out.objects.push({ object, file });
}

function strOrUndef(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

// Fuzzing the YAML of `ambit up`: the local provider's parseFile with random
// text, random documents, real files with random edits, and YAML's own
// traps (alias bombs, deep nesting, duplicate keys, tags). Properties: it
// never throws; it is deterministic; every error is an ObjectError that names
// the file; a file that cannot be read yields no objects at all; every object
// it accepts has a kind, a name and a namespace where one belongs; and it
// stays fast (no exponential alias expansion).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import t from "tap";
import { stringify } from "yaml";
import { parseFile } from "../../controller/provider/local/index.js";
import { CLUSTER_SCOPED_KINDS } from "../../controller/provider/objects.js";
import { ObjectError } from "../../core/errors/errors.js";
import { fuzz } from "../fuzz/harness.js";

const FILE = "apps/fuzzed.yaml";
/** One parse of a small file must not take longer than this (alias expansion is capped). */
const PARSE_BOUND_MS = 2000;

function checkText(text: string): void {
  const started = performance.now();
  const r = parseFile(text, FILE);
  const took = performance.now() - started;
  if (took > PARSE_BOUND_MS) throw new Error(`parseFile took ${Math.round(took)} ms on ${text.length} chars`);
  for (const e of r.errors) {
    if (!(e instanceof ObjectError)) throw new Error(`not an ObjectError: ${String(e)}`);
    if (e.object.file !== FILE || !e.message.includes(FILE))
      throw new Error(`error does not name the file: ${e.message}`);
    if (!e.object.kind) throw new Error(`error names no kind: ${e.message}`);
  }
  if (r.unreadable && r.objects.length > 0) throw new Error("an unreadable file yielded objects");
  if (r.unreadable && r.errors.length === 0) throw new Error("an unreadable file without an error");
  for (const { object, file } of r.objects) {
    if (file !== FILE) throw new Error(`object from ${file}`);
    if (
      typeof object.kind !== "string" ||
      typeof object.metadata?.name !== "string" ||
      !object.metadata.name
    ) {
      throw new Error(`accepted an object without kind or name: ${JSON.stringify(object).slice(0, 200)}`);
    }
    if (!CLUSTER_SCOPED_KINDS.has(object.kind) && typeof object.metadata.namespace !== "string") {
      throw new Error(`accepted ${object.kind} ${object.metadata.name} without a namespace`);
    }
  }
  const again = parseFile(text, FILE);
  const canon = (x: typeof r) =>
    JSON.stringify({ ...x, errors: x.errors.map((e) => e.message) }, (_k, v: unknown) =>
      v instanceof Map ? [...v] : v,
    );
  if (canon(r) !== canon(again)) throw new Error("parseFile is not deterministic");
}

const realFiles = ["examples/demo", "examples/l7"].flatMap((d) => {
  try {
    return readdirSync(d)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => readFileSync(join(d, f), "utf8"));
  } catch {
    return [];
  }
});

const YAML_TOKENS = [
  "---\n",
  "...\n",
  "- ",
  ": ",
  "? ",
  "{",
  "}",
  "[",
  "]",
  ",",
  "&a ",
  "*a",
  "!!str ",
  "!!binary ",
  "!!map ",
  "!custom ",
  "|\n",
  ">-\n",
  "#",
  "'",
  '"',
  "\\",
  "\t",
  "\n",
  "  ",
  "%YAML 1.1\n",
  "%TAG ! tag:x,2000:\n",
  "<<: *a\n",
  "~",
  "null",
  "true",
  "0x1F",
  "1e9",
  ".inf",
  "kind: Pod\n",
  "kind: Service\n",
  "apiVersion: v1\n",
  "metadata:\n  name: x\n",
  "spec:\n",
  "  ports: [{port: 80}]\n",
  "kind: List\nitems:\n",
  "\u0000",
  "\uFEFF",
  "é",
  "😀",
];

const yamlish = fc
  .array(fc.oneof(fc.constantFrom(...YAML_TOKENS), fc.string({ maxLength: 8 })), { maxLength: 60 })
  .map((p) => p.join(""));

const edited = fc
  .tuple(
    fc.constantFrom(...(realFiles.length ? realFiles : ["kind: Pod\n"])),
    fc.array(
      fc.record({
        at: fc.nat(),
        del: fc.integer({ min: 0, max: 5 }),
        ins: fc.oneof(fc.constantFrom(...YAML_TOKENS), fc.string({ maxLength: 4 })),
      }),
      {
        minLength: 1,
        maxLength: 6,
      },
    ),
  )
  .map(([text, edits]) => {
    let s = text;
    for (const e of edits) {
      const at = e.at % (s.length + 1);
      s = s.slice(0, at) + e.ins + s.slice(at + e.del);
    }
    return s;
  });

const documents = fc
  .array(
    fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      // Something shaped like an object, with any values inside.
      fc.record(
        {
          apiVersion: fc.oneof(
            fc.constantFrom("v1", "ambit.dev/v1alpha1", "gateway.networking.k8s.io/v1"),
            fc.jsonValue({ maxDepth: 1 }),
          ),
          kind: fc.oneof(
            fc.constantFrom(
              "Pod",
              "Service",
              "Namespace",
              "Deployment",
              "AuthorizationPolicy",
              "HTTPRoute",
              "Gateway",
              "List",
            ),
            fc.jsonValue({ maxDepth: 1 }),
          ),
          metadata: fc.oneof(
            fc.record(
              {
                name: fc.oneof(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 1 })),
                namespace: fc.jsonValue({ maxDepth: 1 }),
              },
              { requiredKeys: [] },
            ),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          spec: fc.jsonValue({ maxDepth: 4 }),
          items: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
    ),
    { maxLength: 4 },
  )
  .map((docs) => docs.map((d) => stringify(d)).join("---\n"));

const randomBytes = fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b).toString("utf8"));

t.test("YAML traps: alias bombs, deep nesting, duplicate keys, tags, BOMs", async (t) => {
  const bomb = [
    "a: &a [x,x,x,x,x,x,x,x,x]",
    ...Array.from(
      { length: 9 },
      (_, i) =>
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(97 + i)}`)
          .join(",")}]`,
    ),
  ].join("\n");
  const traps = [
    bomb,
    `${"[".repeat(300)}${"]".repeat(300)}`,
    `${"{a: ".repeat(300)}1${"}".repeat(300)}`,
    `${"- ".repeat(300)}x`,
    "apiVersion: v1\nkind: Pod\nkind: Service\nmetadata: {name: x}\n",
    "apiVersion: v1\nkind: !!binary aGVsbG8=\nmetadata: {name: x}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: !custom {name: x}\n",
    "\uFEFFapiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, <<: {namespace: y}}\n",
    "kind: List\nitems: 7\n",
    "kind: List\nitems: [1, null, {kind: Pod}]\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: [1,2]}\n",
    "apiVersion: v1\nkind: __proto__\nmetadata: {name: x}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, __proto__: {polluted: true}}\n",
    "apiVersion: v1\nkind: constructor\nmetadata: {name: x}\n",
    "",
    "---\n---\n...\n",
    "\u0000",
  ];
  for (const text of traps) checkText(text);
  t.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype pollution");
  t.pass(`${traps.length} traps`);
});

// Deeper nesting makes the yaml library overflow the stack; on Node 20 the
// next regular expression compiled then aborts the whole process ("FATAL
// ERROR: RegExpCompiler Allocation failed"), which no try/catch can stop. So
// each of these runs in a child process: the property is "it exits normally".
const DEEP = [
  `${"[".repeat(1000)}${"]".repeat(1000)}`,
  `${"- ".repeat(1000)}x`,
  `${"{a: ".repeat(3000)}1${"}".repeat(3000)}`,
];

async function parsesInChild(text: string): Promise<{ code: number | null; stderr: string }> {
  const mod = new URL("../../controller/provider/local/index.js", import.meta.url).href;
  const script = `const { parseFile } = await import(${JSON.stringify(mod)});
    const text = Buffer.from(process.argv[1], "base64").toString();
    for (let i = 0; i < 3; i++) parseFile(text, "deep.yaml");`;
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", script, Buffer.from(text).toString("base64")],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stderr };
}

t.test("deeply nested YAML does not abort the process", async (t) => {
  const results = await Promise.all(DEEP.map(parsesInChild));
  for (const [i, text] of DEEP.entries()) {
    const r = results[i]!;
    const fatal = r.stderr.split("\n").find((l) => l.includes("FATAL")) ?? "";
    t.equal(r.code, 0, `${JSON.stringify(text.slice(0, 12))}… (${text.length} chars) ${fatal}`);
  }
});

t.test("random YAML-ish text", async (t) => {
  t.ok((await fuzz({ target: "yaml-text", ci: 200 }, yamlish, checkText)) > 0);
});

t.test("real files with random edits", async (t) => {
  t.ok(realFiles.length > 0, `${realFiles.length} example files`);
  t.ok((await fuzz({ target: "yaml-edited", ci: 80 }, edited, checkText)) > 0);
});

t.test("random documents", async (t) => {
  t.ok((await fuzz({ target: "yaml-documents", ci: 150 }, documents, checkText)) > 0);
});

t.test("random bytes", async (t) => {
  t.ok((await fuzz({ target: "yaml-bytes", ci: 200 }, randomBytes, checkText)) > 0);
  t.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype pollution");
});

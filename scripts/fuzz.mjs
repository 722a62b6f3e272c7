// `npm run fuzz [-- TARGET...] [--runs N] [--seed S] [--dist DIR]`
//
// Runs the fuzz tests (test/unit/fuzz-*.test.ts) with a long budget: every
// property FUZZ_RUNS times (default 2000) instead of its short CI budget, with
// FUZZ_SAVE=1 so that a failing input, shrunk by fast-check, is written to
// test/fuzz/corpus/<target>/found-<hash>.json. Commit those files: CI replays
// every corpus seed before its own short run, so a found bug stays a test.
//
// TARGET filters the files by name (hbone, xds, translate, yaml, dns).
// It builds first (npm run build → dist/) unless --dist names a compiled tree.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: process.env.FUZZ_RUNS ?? "2000" },
    seed: { type: "string" },
    dist: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: npm run fuzz -- [hbone|xds|translate|yaml|dns ...] [--runs N] [--seed S] [--dist DIR]");
  process.exit(0);
}

let dist = values.dist ? join(root, values.dist) : join(root, "dist");
if (!values.dist) {
  const built = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  // tsc exits non-zero on any type error in the tree; what it emitted is still runnable.
  if (built.status !== 0) console.warn("build reported errors; running what was emitted");
}
const unit = join(dist, "test/unit");
if (!existsSync(unit)) {
  console.error(`no compiled tests in ${unit}`);
  process.exit(2);
}
const files = readdirSync(unit)
  .filter((f) => /^fuzz-.*\.test\.js$/.test(f))
  .filter((f) => positionals.length === 0 || positionals.some((p) => f.includes(p)))
  .map((f) => join(unit, f));
if (files.length === 0) {
  console.error(`no fuzz tests match ${positionals.join(" ")}`);
  process.exit(2);
}

console.log(`fuzzing ${files.length} files, ${values.runs} runs per property${values.seed ? `, seed ${values.seed}` : ""}`);
const env = { ...process.env, FUZZ_RUNS: values.runs, FUZZ_SAVE: "1", ...(values.seed ? { FUZZ_SEED: values.seed } : {}) };
const child = spawn(
  join(root, "node_modules/.bin/tap"),
  ["--disable-coverage", "--jobs=1", "--timeout=0", "--reporter=terse", ...files],
  { cwd: root, env, stdio: "inherit" },
);
child.on("exit", (code) => {
  const corpus = join(root, "test/fuzz/corpus");
  if (existsSync(corpus)) {
    const found = readdirSync(corpus, { recursive: true }).filter((f) => String(f).includes("found-"));
    if (found.length) console.log(`corpus: ${found.length} found inputs under test/fuzz/corpus (commit new ones)`);
  }
  process.exit(code ?? 1);
});

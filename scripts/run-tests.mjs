// Runs every test tier with tap and prints the totals on a line of their own
// ("N passed, N failed, N skipped"), as CI reads them.
//   unit/   pure and loopback-socket tests, in parallel, with coverage
//   netns/  real network namespaces (root), one file at a time
//   k8s/    a real API server, scheduler and controller manager built from
//           Kubernetes' Go modules (cached in ~/.cache/ambit), one file at a time
//   bench   `npm run bench -- --quick`: the benchmark harness works (asserts no timing)
// AMBIT_TEST_TIERS=unit,netns limits the tiers (default: all).
// Exits non-zero if any test failed or if no test ran at all.
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const tapBin = join(root, "node_modules/.bin/tap");

function files(dir) {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  const out = [];
  for (const e of readdirSync(abs, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".test.js")) out.push(join(e.parentPath ?? e.path, e.name).slice(root.length));
  }
  return out.sort();
}

// CI shows only the end of a long log: every failing test is repeated there,
// with its subtest path and the first lines of tap's diagnostic, so a failure
// can be read without the full output.
const failureReports = [];
class FailureCollector {
  constructor(tier) {
    this.tier = tier;
    this.partial = "";
    this.path = []; // subtest names by indentation depth
    this.current = null; // the failure whose diagnostic lines are being collected
    this.innerFailures = 0;
  }
  feed(text) {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }
  end() {
    if (this.partial) this.line(this.partial);
    this.partial = "";
    this.flush();
  }
  flush() {
    if (this.current) failureReports.push(this.current.join("\n"));
    this.current = null;
  }
  line(line) {
    const depth = Math.floor((line.length - line.trimStart().length) / 4);
    const text = line.trim();
    const sub = text.match(/^# Subtest: (.*)$/);
    if (sub) {
      this.flush();
      this.path.length = depth;
      this.path[depth] = sub[1];
      if (depth === 0) this.innerFailures = 0; // a new test file
      return;
    }
    const notOk = text.match(/^not ok \d+ - (.*)$/);
    if (notOk) {
      this.flush();
      // A failing subtest or file is reported again by each enclosing level
      // ("not ok N - name # time=..."): those are kept only when nothing
      // inside said why (a timeout, a crash).
      const wrapper = /# time=/.test(notOk[1]);
      if (wrapper && this.innerFailures > 0) return;
      this.innerFailures = wrapper ? 0 : this.innerFailures + 1;
      const where = this.path.slice(0, depth).filter(Boolean).join(" > ");
      this.current = [`[${this.tier}] ${where ? `${where} > ` : ""}${notOk[1]}`];
      return;
    }
    if (this.current) {
      if (/^(ok|not ok) \d+/.test(text) || this.current.length > 25) this.flush();
      else this.current.push(`    ${line.trimStart()}`);
    }
  }
}

function runTier(name, testFiles, args, extraEnv = {}) {
  return new Promise((resolve) => {
    if (testFiles.length === 0) return resolve({ pass: 0, fail: 0, skip: 0 });
    console.log(`\n=== ${name}: ${testFiles.length} files ===`);
    const env = { ...process.env, ...extraEnv };
    const child = spawn(tapBin, [...args, ...testFiles], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
    let tail = "";
    const failures = new FailureCollector(name);
    child.stdout.on("data", (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString()).slice(-4000);
      failures.feed(d.toString());
    });
    child.on("close", (code) => {
      // tap's closing summary: "# { total: 12, pass: 11, fail: 1, skip: 2 }"
      const m = tail.match(/# \{ total: (\d+)([^}]*)\}/);
      const get = (k) => Number((m?.[2].match(new RegExp(`${k}: (\\d+)`)) ?? [])[1] ?? 0);
      const r = m ? { pass: get("pass"), fail: get("fail"), skip: get("skip") + get("todo") } : { pass: 0, fail: 1, skip: 0 };
      if (code !== 0 && r.fail === 0) r.fail = 1; // a crash with no counted failure still fails the run
      failures.end();
      resolve(r);
    });
  });
}

const isRoot = process.getuid?.() === 0;
const totals = { pass: 0, fail: 0, skip: 0 };
const add = (r) => {
  totals.pass += r.pass;
  totals.fail += r.fail;
  totals.skip += r.skip;
};

const tiers = new Set((process.env.AMBIT_TEST_TIERS ?? "unit,netns,k8s,bench").split(","));

/** Runs a command as one test of its own (a tier whose result is its exit status). */
function runStep(name, cmd, args) {
  return new Promise((resolve) => {
    console.log(`\n=== ${name}: ${cmd} ${args.join(" ")} ===`);
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
    child.on("close", (code) => {
      console.log(`${code === 0 ? "ok" : "not ok"} - ${name}`);
      if (code !== 0) failureReports.push(`[step] ${name}: exit ${code}`);
      resolve(code === 0);
    });
  });
}

// In-process components log JSON lines; in unit tests only errors are worth reading.
// (The netns tier runs real `ambit` processes whose logs the tests read: left as is.)
if (tiers.has("unit")) {
  add(await runTier("unit", files("dist/test/unit"), ["--jobs=2", "--timeout=180"], { AMBIT_LOG_LEVEL: process.env.AMBIT_LOG_LEVEL ?? "error" }));
}

for (const tier of ["netns", "k8s"]) {
  if (!tiers.has(tier)) continue;
  const tierFiles = files(`dist/test/${tier}`);
  if (!isRoot) {
    console.log(`\n${tier} tier skipped: ${tierFiles.length} files need root`);
    totals.skip += tierFiles.length;
    continue;
  }
  if (tier === "k8s" && tierFiles.length > 0) {
    // First run on a machine builds the control plane (about 10-15 min on 2 cores), later runs reuse it.
    if (!(await runStep("build Kubernetes control plane", "bash", ["test/k8s/build-kube.sh"]))) {
      totals.fail += 1;
      continue;
    }
  }
  if (tier === "netns" && tierFiles.some((f) => f.includes("observability-"))) {
    // Jaeger for observability-mesh: built once from its Go module (minutes cold), outside tap's per-file timeout.
    if (!(await runStep("build Jaeger", "bash", ["scripts/build-jaeger.sh"]))) totals.fail += 1;
  }
  // Soak tests hold their load for minutes by design (soak-10k: 10 min): a
  // tap run of their own with a per-file timeout that fits, so the others keep
  // the 10-minute bound that catches a hung test.
  const soak = tierFiles.filter((f) => /\/soak-[^/]*\.test\.js$/.test(f));
  const rest = tierFiles.filter((f) => !soak.includes(f));
  add(await runTier(tier, rest, ["--jobs=1", "--disable-coverage", "--timeout=600"]));
  if (soak.length > 0) add(await runTier(`${tier} (soak)`, soak, ["--jobs=1", "--disable-coverage", "--timeout=1800"]));
}

if (tiers.has("bench") && isRoot && existsSync(join(root, "dist/bench/main.js"))) {
  if (await runStep("bench --quick (the harness works; no timing asserted)", "node", ["dist/bench/main.js", "--quick"])) totals.pass += 1;
  else totals.fail += 1;
}

if (failureReports.length > 0) {
  console.log(`\n=== failures (${failureReports.length}) ===`);
  for (const f of failureReports) console.log(f);
}
console.log(`\n${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`);
process.exit(totals.fail > 0 || totals.pass === 0 ? 1 : 0);

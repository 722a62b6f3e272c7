// `npm run soak`: an hour (--minutes) at 1,000 exchanges per second (--rate)
// with connection churn through ambit's ztunnel pair, each ztunnel's RSS and
// open descriptors sampled every minute. Writes bench/results/soak.json and
// soak.svg and re-renders BENCHMARKS.md (its Soak section) from them and the
// last benchmark results. Not part of CI. Everything it made is removed on
// exit, also on failure and Ctrl-C.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { findRepoRoot } from "./config.js";
import { PLAIN_NODE } from "./peers/ambit.js";
import { writeReport } from "./report-files.js";
import type { BenchResults } from "./results.js";
import { type SoakMesh, startSoakMesh } from "./soak-mesh.js";
import { rssSlopes, type SoakResult, type SoakSample } from "./soak-report.js";
import { randomMeshId } from "./topology.js";

const CHURN_LOAD = fileURLToPath(new URL("./tools/churn-load.js", import.meta.url));
const log = (m: string) => process.stderr.write(`[soak] ${m}\n`);
const USAGE = `usage: npm run soak -- [--minutes 60] [--rate 1000] [--connections 64] [--per-connection 100] [--warmup 5] [--out FILE]`;

interface SoakArgs {
  minutes: number;
  rate: number;
  connections: number;
  perConnection: number;
  warmup: number;
  out: string;
}

function parse(argv: string[], repoRoot: string): SoakArgs | "help" {
  const a: SoakArgs = {
    minutes: 60,
    rate: 1000,
    // Enough connections that the rate is reachable at tens of ms per exchange on a loaded machine.
    connections: 64,
    perConnection: 100,
    warmup: 5,
    out: join(repoRoot, "bench/results/soak.json"),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") return "help";
    const v = argv[++i];
    if (v === undefined) throw new Error(`soak: flag ${flag} needs a value\n${USAGE}`);
    if (flag === "--out") a.out = v;
    else {
      const key = (
        {
          "--minutes": "minutes",
          "--rate": "rate",
          "--connections": "connections",
          "--per-connection": "perConnection",
          "--warmup": "warmup",
        } as const
      )[flag as string];
      if (!key || !(Number(v) > 0)) throw new Error(`soak: bad flag ${flag} ${v}\n${USAGE}`);
      a[key] = Number(v);
    }
  }
  return a;
}

interface LoadLine {
  phase: string;
  requests: number;
  errors: number;
  connectionsOpened: number;
  connectErrors: number;
  window: { requests: number; errors: number; p99Ms: number };
}

async function runSoak(mesh: SoakMesh, a: SoakArgs): Promise<SoakResult> {
  const startedAt = new Date();
  const loadAverage = loadavg();
  const samples: SoakSample[] = [];
  const t0 = performance.now();
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      mesh.topo.clientPod.netns,
      ...PLAIN_NODE,
      CHURN_LOAD,
      mesh.echo.ip,
      String(mesh.echo.port),
      String(a.rate),
      String(a.connections),
      String(a.perConnection),
      String(Math.round(a.minutes * 60)),
      "60",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let last: LoadLine | undefined;
  const rss0 = mesh.rss();
  samples.push({ minute: 0, rssMB: rss0, fds: mesh.fds(), requests: 0, errors: 0, p99Ms: 0 });
  createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      last = JSON.parse(line) as LoadLine;
    } catch {
      return;
    }
    // The final line only closes the totals; samples are the per-minute ones.
    if (last.phase !== "running") return;
    const s: SoakSample = {
      minute: (performance.now() - t0) / 60_000,
      rssMB: mesh.rss(),
      fds: mesh.fds(),
      requests: last.window.requests,
      errors: last.window.errors,
      p99Ms: last.window.p99Ms,
    };
    samples.push(s);
    log(
      `minute ${s.minute.toFixed(1)}: ${s.requests} exchanges, ${s.errors} errors, p99 ${s.p99Ms.toFixed(1)} ms; RSS ${JSON.stringify(
        Object.fromEntries(Object.entries(s.rssMB).map(([k, v]) => [k, Number(v.toFixed(1))])),
      )} fds ${JSON.stringify(s.fds)}`,
    );
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0 || !last) throw new Error(`churn-load exited ${code}`);
  return {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    plannedMinutes: a.minutes,
    minutes: (performance.now() - t0) / 60_000,
    rate: a.rate,
    connections: a.connections,
    exchangesPerConnection: a.perConnection,
    warmupMinutes: Math.round(Math.min(a.warmup, a.minutes / 3) * 10) / 10,
    samples,
    totals: {
      requests: last.requests,
      errors: last.errors,
      connectionsOpened: last.connectionsOpened,
      connectErrors: last.connectErrors,
    },
    loadAverage,
    cores: cpus().length,
  };
}

async function main(): Promise<number> {
  const repoRoot = findRepoRoot();
  const a = parse(process.argv.slice(2), repoRoot);
  if (a === "help") {
    console.log(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log("needs root (it creates network namespaces)");
    return 1;
  }
  const mesh = await startSoakMesh(randomMeshId(), log);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= mesh.close();
    return closing;
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      void close().finally(() => process.exit(130));
    });
  try {
    log(`${a.minutes} min at ${a.rate}/s, ${a.connections} connections of ${a.perConnection} exchanges`);
    const result = await runSoak(mesh, a);
    mkdirSync(join(repoRoot, "bench/results"), { recursive: true });
    writeFileSync(a.out, `${JSON.stringify(result, null, 2)}\n`);
    const slopes = rssSlopes(result);
    log(`results: ${a.out}; RSS slope after warm-up (MB/hour): ${JSON.stringify(slopes)}`);
    const latest = join(repoRoot, "bench/results/latest.json");
    if (a.out === join(repoRoot, "bench/results/soak.json") && existsSync(latest)) {
      const files = writeReport(JSON.parse(readFileSync(latest, "utf8")) as BenchResults, repoRoot);
      log(`report: ${files.join(", ")}`);
    }
    return result.totals.errors + result.totals.connectErrors > 0 ? 1 : 0;
  } finally {
    await close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

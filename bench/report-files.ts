// Writes BENCHMARKS.md and the SVG charts from a results object.
// `node dist/bench/report-files.js [results.json]` re-renders without measuring.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findRepoRoot } from "./config.js";
import { charts } from "./report.js";
import { CHART_FILES, renderBenchmarksMd } from "./report-doc.js";
import type { BenchResults } from "./results.js";
import { renderSoakChart, SOAK_CHART, type SoakResult } from "./soak-report.js";
import { renderBarChart } from "./svg.js";

/** The last `npm run soak` result, when there is one (its section of BENCHMARKS.md survives benchmark runs). */
export function readSoak(repoRoot: string): SoakResult | undefined {
  const path = join(repoRoot, "bench/results/soak.json");
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as SoakResult) : undefined;
}

export function writeReport(r: BenchResults, repoRoot: string): string[] {
  const c = charts(r);
  const soak = readSoak(repoRoot);
  const files: [string, string][] = [
    [CHART_FILES.latency, renderBarChart(c.latency)],
    [CHART_FILES.cpu, renderBarChart(c.cpu)],
    [CHART_FILES.memory, renderBarChart(c.memory)],
    ...(soak ? [[SOAK_CHART, renderSoakChart(soak)] as [string, string]] : []),
    ["BENCHMARKS.md", renderBenchmarksMd(r, soak)],
  ];
  for (const [rel, text] of files) {
    const abs = join(repoRoot, rel);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, text);
  }
  return files.map(([rel]) => rel);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const repoRoot = findRepoRoot();
  const input = process.argv[2] ?? join(repoRoot, "bench/results/latest.json");
  const files = writeReport(JSON.parse(readFileSync(input, "utf8")) as BenchResults, repoRoot);
  console.log(files.join("\n"));
}

// Writes BENCHMARKS.md and the SVG charts from a results object.
// `node dist/bench/report-files.js [results.json]` re-renders without measuring.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findRepoRoot } from "./config.js";
import { charts } from "./report.js";
import { CHART_FILES, renderBenchmarksMd } from "./report-doc.js";
import type { BenchResults } from "./results.js";
import { renderBarChart } from "./svg.js";

export function writeReport(r: BenchResults, repoRoot: string): string[] {
  const c = charts(r);
  const files: [string, string][] = [
    [CHART_FILES.latency, renderBarChart(c.latency)],
    [CHART_FILES.cpu, renderBarChart(c.cpu)],
    [CHART_FILES.memory, renderBarChart(c.memory)],
    ["BENCHMARKS.md", renderBenchmarksMd(r)],
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

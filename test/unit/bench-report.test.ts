// The benchmark report on a fixture results file: ratios to direct and to the
// reference pair, added latency, cost per 1,000 rps, the target checks, the
// not-yet-measured rows, the whole BENCHMARKS.md and the SVG charts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import {
  added,
  charts,
  costPer1k,
  fmtRatio,
  ratio,
  renderControlPlane,
  renderMetricTable,
  TABLES,
  targetChecks,
} from "../../bench/report.js";
import { renderBenchmarksMd } from "../../bench/report-doc.js";
import type { BenchResults } from "../../bench/results.js";
import { logScale, niceScale, renderBarChart } from "../../bench/svg.js";

const fixture = () =>
  JSON.parse(readFileSync(join(process.cwd(), "bench/fixtures/results.json"), "utf8")) as BenchResults;

const table = (title: string) => {
  const tab = TABLES.find((x) => x.title.startsWith(title));
  if (!tab) throw new Error(`no table ${title}`);
  return tab;
};

/** Cells of the markdown row whose first cell is `label`, in the table after `heading` (values or ratios). */
function row(md: string, label: string, which: "values" | "ratios" = "values"): string[] {
  const i = md.indexOf("Ratios");
  const part = which === "ratios" ? md.slice(i) : i < 0 ? md : md.slice(0, i);
  const line = part.split("\n").find((l) => l.startsWith(`| ${label} |`));
  if (!line) throw new Error(`no row ${label} in:\n${part}`);
  return line
    .split("|")
    .slice(2, -1)
    .map((c) => c.trim());
}

t.test("ratio, added and cost per 1,000 rps", async (t) => {
  t.equal(ratio(1.4, 1.0), 1.4);
  t.equal(ratio(1, 0), undefined, "no ratio to zero");
  t.equal(ratio(undefined, 2), undefined);
  t.equal(ratio(2, Number.NaN), undefined);
  t.equal(added(1.4, 1.0)?.toFixed(3), "0.400");
  t.equal(added(1, undefined), undefined);
  const cost = {
    processes: [{ role: "a", vcpu: 0.1, cpuSeconds: 6, rssAvgMB: 20, rssMaxMB: 20 }],
    vcpu: 0.1,
    rssMB: 20,
  };
  t.same(costPer1k(cost, 500), { vcpu: 0.2, rssMB: 40 });
  t.equal(costPer1k(cost, 0), undefined);
  t.equal(costPer1k({ processes: [], vcpu: 0, rssMB: 0 }, 1000), undefined, "direct has no proxy cost");
  t.equal(fmtRatio(0.7), "0.70×");
});

t.test("latency table: values, added p99 and ratios to direct and to the HAProxy pair", async (t) => {
  const r = fixture();
  const md = renderMetricTable(r, table("1. Latency"));
  t.same(row(md, "ambit L4 (2 ztunnels, HBONE)").slice(0, 5), ["0.500", "0.700", "1.400", "3.000", "0.400"]);
  t.same(row(md, "HAProxy mTLS pair (TCP)").slice(2, 5), ["2.000", "4.000", "1.000"]);
  // p99: ambit 1.4 / direct 1.0 = 1.40×; / HAProxy 2.0 = 0.70×
  t.equal(row(md, "ambit L4 (2 ztunnels, HBONE)", "ratios")[2], "1.40× / 0.70×");
  t.equal(row(md, "direct (no proxy)", "ratios")[2], "1.00× / 0.50×");
  t.match(row(md, "ambit L4 + waypoint")[0], /^not yet measured: the waypoint is not built yet/);
  t.notMatch(md.slice(md.indexOf("Ratios")), /ambit L4 \+ waypoint/, "no ratio row for an unmeasured peer");
});

t.test("cost and saturation tables", async (t) => {
  const r = fixture();
  const cost = renderMetricTable(r, table("2. Cost"));
  t.notMatch(cost, /\| direct/, "direct has no cost row");
  // ambit: 0.1 vCPU at 1,000 rps → 0.100 per 1k; HAProxy 0.2 → ratio 0.50×
  t.equal(row(cost, "ambit L4 (2 ztunnels, HBONE)")[0], "0.100");
  t.equal(row(cost, "ambit L4 (2 ztunnels, HBONE)", "ratios")[0], "– / 0.50×");
  // at saturation: 1.2 vCPU at 12,000 rps = 0.100 per 1k; HAProxy 1.0 at 10,000 = 0.100 → 1.00×
  t.equal(row(cost, "ambit L4 (2 ztunnels, HBONE)", "ratios")[3], "– / 1.00×");
  const sat = renderMetricTable(r, table("3. Saturation"));
  t.same(row(sat, "ambit L4 (2 ztunnels, HBONE)"), ["12,000", "3,000", "300.0", "250.0"]);
  t.same(row(sat, "ambit L4 (2 ztunnels, HBONE)", "ratios"), [
    "0.60× / 1.20×",
    "0.60× / 6.00×",
    "0.60× / 2.00×",
    "0.63× / 1.25×",
  ]);
  t.same(row(sat, "HAProxy mTLS pair (HTTP mode)").slice(2), ["–", "–"], "no bulk TCP for the L7 peer");
});

t.test("scale table: KB per idle connection", async (t) => {
  const md = renderMetricTable(fixture(), table("5. Scale"));
  // (180 - 80) MB over 10,000 connections = 10.24 KB
  t.equal(row(md, "ambit L4 (2 ztunnels, HBONE)")[2], "10.2");
  t.equal(row(md, "direct (no proxy)")[2], "–");
  t.notMatch(md, /HTTP mode/, "L7 peers do not take part in the L4 scale scenario");
});

t.test("control plane table and the not-measured form", async (t) => {
  const r = fixture();
  t.match(renderControlPlane(r), /\| 10,000 \| 100 \| 1,500\.0 \| 20\.0 \| 40\.0 \| 300\.0 \|/);
  r.controlPlane = { status: "not-measured", note: "server not built", runs: [] };
  t.match(renderControlPlane(r), /Not yet measured: server not built/);
});

t.test("targets are reported with met / not met, never asserted", async (t) => {
  const checks = new Map(targetChecks(fixture()).map((c) => [c.target, c]));
  t.same(checks.get("ambit L4 added p99 at 1,000 rps ≤ 0.5 ms"), {
    target: "ambit L4 added p99 at 1,000 rps ≤ 0.5 ms",
    measured: "0.400 ms",
    met: true,
  });
  t.equal(checks.get("ambit L4 CPU per 1,000 rps ≤ HAProxy pair")?.measured, "0.50×");
  t.equal(
    checks.get("ztunnel ≤ 0.1 vCPU per 1,000 rps")?.measured,
    "0.050 vCPU",
    "per ztunnel: the pair's cost / 2",
  );
  t.equal(
    checks.get("10,000 idle connections ≤ 150 MB RSS (per ztunnel)")?.met,
    true,
    "180 MB over 2 ztunnels",
  );
  t.equal(checks.get("control plane: 10,000 pods to 100 ztunnels < 1 s")?.met, false);
  t.equal(checks.get("waypoint path added p99 ≤ 1.5 ms")?.measured, "not measured");
  t.equal(checks.get("waypoint path added p99 ≤ 1.5 ms")?.met, undefined);
});

t.test("BENCHMARKS.md has machine, method, peers, every scenario and the charts", async (t) => {
  const md = renderBenchmarksMd(fixture());
  for (const want of [
    "Fixture CPU @ 2.0GHz",
    "| haproxy | 2.6.12 |",
    "## Method",
    "## Peers",
    "**not-measured**: the waypoint is not built yet",
    "### 1. Latency",
    "### 2. Cost",
    "### 3. Saturation",
    "### 4. gRPC",
    "### 5. Scale",
    "### 6. Control plane",
    "### Targets",
    "![latency percentiles per peer](bench/results/latency.svg)",
    "15.0 min",
  ]) {
    t.ok(md.includes(want), `has ${want}`);
  }
  t.notMatch(md, /Steps that failed/);
});

t.test("charts: one bar per measured peer and value, consistent colours, escaped text", async (t) => {
  const c = charts(fixture());
  t.same(
    c.latency.series.map((s) => s.name),
    [
      "direct (no proxy)",
      "ambit L4 (2 ztunnels, HBONE)",
      "HAProxy mTLS pair (TCP)",
      "HAProxy mTLS pair (HTTP mode)",
    ],
  );
  t.same(c.latency.series[1]?.values, [0.5, 0.7, 1.4, 3.0]);
  t.equal(c.cpu.series[0]?.color, c.latency.series[1]?.color, "ambit has the same colour in every chart");
  const svg = renderBarChart(c.latency);
  t.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, 16, "4 peers × 4 percentiles");
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  const odd = renderBarChart({
    title: "a < b & c",
    unit: "ms",
    groups: ["g"],
    series: [{ name: "x", values: [undefined] }],
  });
  t.match(odd, /a &lt; b &amp; c/);
  t.notMatch(odd, /<rect [^>]*><title>/, "a missing value draws no bar");
  t.match(odd, /<title>a &lt; b &amp; c<\/title>/, "the chart has an accessible title");
});

t.test("log scale: whole decades, ticks at 1, 2, 5", async (t) => {
  t.same(logScale([0.35, 136]), {
    lo: -1,
    hi: 3,
    ticks: [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
  });
  t.same(logScale([]).ticks, [1, 10]);
  const svg = renderBarChart({
    title: "t",
    unit: "ms",
    log: true,
    groups: ["a"],
    series: [
      { name: "x", values: [0.5] },
      { name: "y", values: [50] },
    ],
  });
  t.match(svg, /ms \(log scale\)/);
  const heights = [...svg.matchAll(/<rect [^>]*height="([\d.]+)"[^>]*><title>/g)].map((x) => Number(x[1]));
  t.ok(heights[1]! > heights[0]! * 2, "two decades apart, drawn on a log axis");
});

t.test("niceScale rounds the axis up to 1, 2, 2.5 or 5 × 10^k steps", async (t) => {
  t.same(niceScale(9.5), { max: 10, step: 2 });
  t.same(niceScale(0.37), { max: 0.4, step: 0.1 });
  t.same(niceScale(12), { max: 12.5, step: 2.5 });
  t.same(niceScale(0), { max: 1, step: 0.2 });
});

// manifests/observability: every Grafana panel's PromQL parses (Prometheus'
// own parser, through `promtool check rules` with one recording rule per
// query) and names only metrics the components export (found in the source:
// the istio_* and ambit_* metric definitions, prom-client's process metrics
// with the ambit_process_ prefix); the dashboards are well-formed and the
// kustomization ships all of them; the cluster scrape jobs pass promtool.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import t from "tap";
import { parse, stringify } from "yaml";
import {
  type Dashboard,
  dashboardQueries,
  expandGrafanaVariables,
  metricNamesIn,
} from "../netns/observability-queries.js";

const root = process.cwd();
const dashDir = path.join(root, "manifests/observability/dashboards");
const dashboards = fs
  .readdirSync(dashDir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ file: f, d: JSON.parse(fs.readFileSync(path.join(dashDir, f), "utf8")) as Dashboard }));
const promtool = fs.existsSync("/usr/bin/promtool") ? "/usr/bin/promtool" : undefined;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== "gen" && e.name !== "node_modules") out.push(...sourceFiles(p));
    else if (e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Every metric the components define: counter/gauge/histogram("name"...), `name: "..."`, *_METRIC = "...". */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  const histograms = new Set<string>();
  for (const dir of ["core", "ztunnel", "waypoint", "controller"]) {
    for (const f of sourceFiles(path.join(root, dir))) {
      const text = fs.readFileSync(f, "utf8");
      for (const m of text.matchAll(/\b(counter|gauge|histogram)\(\s*"((?:istio|ambit)_[a-z0-9_]+)"/g)) {
        names.add(m[2]!);
        if (m[1] === "histogram") histograms.add(m[2]!);
      }
      for (const m of text.matchAll(
        /new (Counter|Gauge|Histogram)\(\{\s*name:\s*"((?:istio|ambit)_[a-z0-9_]+)"/g,
      )) {
        names.add(m[2]!);
        if (m[1] === "Histogram") histograms.add(m[2]!);
      }
      for (const m of text.matchAll(/[A-Z_]+_METRIC\s*=\s*"((?:istio|ambit)_[a-z0-9_]+)"/g)) names.add(m[1]!);
    }
  }
  for (const h of histograms) for (const s of ["_bucket", "_sum", "_count"]) names.add(h + s);
  // The process metrics ztunnel and waypoint enable (core/telemetry/metrics.ts enableProcessMetrics).
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: "ambit_process_" });
  for (const m of reg.getMetricsAsArray()) {
    names.add(m.name);
    if ((m as unknown as { type?: string }).type === "histogram")
      for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
  }
  return names;
}

t.test("four dashboards with unique uids, panels laid out on the 24-column grid", async (t) => {
  t.same(
    dashboards.map((x) => x.d.uid),
    ["ambit-control-plane", "ambit-mesh-overview", "ambit-workload", "ambit-ztunnel"],
  );
  for (const { file, d } of dashboards) {
    t.equal(`${d.uid}.json`, file, `${file}: named after its uid`);
    t.ok(d.panels.length >= 6, `${file}: ${d.panels.length} panels`);
    const ids = new Set(d.panels.map((p) => p.id));
    t.equal(ids.size, d.panels.length, `${file}: panel ids unique`);
    for (const p of d.panels) {
      t.ok(p.gridPos.x + p.gridPos.w <= 24, `${file} '${p.title}' fits the grid`);
      t.ok(p.targets.length > 0 && p.targets.every((q) => q.expr.trim()), `${file} '${p.title}' has queries`);
    }
    const defined = new Set(d.templating.list.map((v) => v.name));
    for (const q of dashboardQueries(d)) {
      for (const m of q.expr.matchAll(/\$(\w+)/g))
        if (m[1] !== "__rate_interval")
          t.ok(defined.has(m[1]!), `${file} '${q.panel}': $${m[1]} is a variable`);
    }
  }
});

t.test("every query names only metrics the components export", async (t) => {
  const exported = exportedMetrics();
  t.ok(
    exported.has("istio_requests_total") && exported.has("ambit_process_process_cpu_seconds_total"),
    "scanner finds metrics",
  );
  t.ok(exported.has("istio_request_duration_milliseconds_bucket"), "histogram series");
  let checked = 0;
  for (const { file, d } of dashboards) {
    for (const q of dashboardQueries(d)) {
      const names = metricNamesIn(expandGrafanaVariables(q.expr));
      t.ok(names.length > 0, `${file} '${q.panel}' names a metric`);
      for (const n of names) {
        checked++;
        t.ok(exported.has(n), `${file} '${q.panel}': ${n} is exported`);
      }
    }
  }
  t.ok(checked > 40, `${checked} metric references checked`);
  // The extractor itself: functions, label names, durations and strings are not metrics.
  t.same(
    metricNamesIn(
      'histogram_quantile(0.99, sum by (le, destination_workload) (rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",x=~"a_b"}[30s]))) / on(job) group_left max(up)',
    ),
    ["istio_request_duration_milliseconds_bucket", "up"],
  );
});

t.test(
  "every query parses (promtool check rules: one recording rule per query)",
  { skip: !promtool && "no promtool (scripts/setup-system.sh installs prometheus)" },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-dash-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const rules = dashboards.flatMap(({ d }) =>
      dashboardQueries(d).map((q, i) => ({
        record: `ambit_dashboard:${d.uid.replace(/-/g, "_")}:${i}`,
        expr: expandGrafanaVariables(q.expr),
      })),
    );
    const file = path.join(dir, "rules.yml");
    fs.writeFileSync(file, stringify({ groups: [{ name: "dashboards", rules }] }));
    const r = spawnSync(promtool!, ["check", "rules", file], { encoding: "utf8" });
    t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    t.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    // A broken query is refused: the check can fail.
    fs.writeFileSync(
      file,
      stringify({ groups: [{ name: "x", rules: [{ record: "x", expr: "sum(rate(x[5m])" }] }] }),
    );
    t.not(spawnSync(promtool!, ["check", "rules", file]).status, 0, "promtool refuses an unbalanced query");
  },
);

t.test("kustomization ships every dashboard; scrape jobs carry the dashboards' job names", async (t) => {
  const k = parse(fs.readFileSync(path.join(root, "manifests/observability/kustomization.yaml"), "utf8")) as {
    configMapGenerator: { files: string[]; options: { labels: Record<string, string> } }[];
  };
  t.same(
    k.configMapGenerator[0]!.files.map((f) => path.basename(f)).sort(),
    dashboards.map((x) => x.file),
  );
  t.equal(k.configMapGenerator[0]!.options.labels.grafana_dashboard, "1");
  const cm = parse(
    fs.readFileSync(path.join(root, "manifests/observability/scrape-config.yaml"), "utf8"),
  ) as {
    data: Record<string, string>;
  };
  const jobs = parse(cm.data["ambit-scrape-configs.yaml"]!) as { scrape_configs: { job_name: string }[] };
  t.same(
    jobs.scrape_configs.map((j) => j.job_name),
    ["ambit-ztunnel", "ambit-waypoint", "ambit-controller"],
  );
  // Debian's promtool has no Kubernetes discovery, so the relabelling is checked here: every regex compiles
  // (Prometheus anchors them) and each job keeps its own pods.
  for (const j of jobs.scrape_configs as {
    job_name: string;
    relabel_configs: { regex?: string; action?: string }[];
  }[]) {
    for (const r of j.relabel_configs)
      if (r.regex) t.doesNotThrow(() => new RegExp(`^(?:${r.regex})$`), `${j.job_name}: ${r.regex}`);
    t.ok(
      j.relabel_configs.some((r) => r.action === "keep"),
      `${j.job_name} keeps only its pods`,
    );
  }
});

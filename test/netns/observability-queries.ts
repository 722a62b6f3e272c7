// The queries of the Grafana dashboards in manifests/observability, as the
// unit test (parse, metric names) and the netns test (run against a real
// Prometheus) read them.

export interface Dashboard {
  uid: string;
  title: string;
  templating: { list: { name: string; type: string; definition?: string }[] };
  panels: {
    id: number;
    title: string;
    description?: string;
    gridPos: { x: number; y: number; w: number; h: number };
    targets: { refId: string; expr: string }[];
  }[];
}

export interface DashboardQuery {
  dashboard: string;
  panel: string;
  expr: string;
  /** The panel says "Empty when ...": no data is a valid answer on a healthy mesh. */
  emptyOk: boolean;
}

/** Every panel query, and every query variable as the PromQL that answers it (label_values(m, l) → count by (l) (m)). */
export function dashboardQueries(d: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const v of d.templating.list) {
    if (v.type !== "query" || !v.definition) continue;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition.trim());
    if (!m) throw new Error(`${d.uid}: variable ${v.name}: not label_values(metric, label): ${v.definition}`);
    out.push({ dashboard: d.uid, panel: `$${v.name}`, expr: `count by (${m[2]}) (${m[1]})`, emptyOk: false });
  }
  for (const p of d.panels)
    for (const q of p.targets)
      out.push({
        dashboard: d.uid,
        panel: `${p.title} [${q.refId}]`,
        expr: q.expr,
        emptyOk: /Empty when/.test(p.description ?? ""),
      });
  return out;
}

/** Grafana's variables as a dashboard with "All" selected sends them. */
export function expandGrafanaVariables(expr: string, rateInterval = "1m"): string {
  return expr.replace(/\$__rate_interval/g, rateInterval).replace(/\$\w+/g, ".*");
}

const NOT_METRICS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "and",
  "or",
  "unless",
  "inf",
  "nan",
]);

/** Metric names a PromQL expression selects (functions, label names, strings and durations left out). */
export function metricNamesIn(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2]) continue; // a function or aggregation
    if (NOT_METRICS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names];
}

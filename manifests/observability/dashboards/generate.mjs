// Writes the Grafana dashboards of manifests/observability/dashboards/*.json:
// mesh overview, workload, ztunnel resources, control plane. Every query
// uses the metric names the components export (Istio's istio_* for traffic,
// ambit_* for the processes) and the job names of `ambit up --observability`
// and of the cluster scrape config (ambit-controller, ambit-ztunnel,
// ambit-waypoint). A panel whose description says "Empty when ..." may show
// no data on a healthy mesh; test/netns/observability-mesh.test.ts runs every
// other query against a real Prometheus and requires data.
// Run: node manifests/observability/dashboards/generate.mjs  (the output is committed).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// Grafana's own variable syntax, not a template literal.
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana variable
const DS = { type: "prometheus", uid: "${datasource}" };
const R = "$__rate_interval";

const datasourceVar = {
  name: "datasource",
  label: "Data source",
  type: "datasource",
  query: "prometheus",
  current: {},
  hide: 0,
};

function queryVar(name, label, definition) {
  return {
    name,
    label,
    type: "query",
    datasource: DS,
    definition,
    query: { query: definition, refId: `${name}-var` },
    includeAll: true,
    allValue: ".*",
    multi: true,
    refresh: 2,
    sort: 1,
    current: { text: ["All"], value: ["$__all"] },
    hide: 0,
  };
}

/** A panel: kind "timeseries" or "stat"; targets as [expr, legend]. */
function panel(kind, title, description, unit, targets, size = { w: 12, h: 8 }) {
  return {
    type: kind,
    title,
    description,
    datasource: DS,
    gridPos: { ...size, x: 0, y: 0 },
    fieldConfig: { defaults: { unit, ...(kind === "stat" ? { decimals: 2 } : {}) }, overrides: [] },
    options:
      kind === "stat"
        ? { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, colorMode: "value" }
        : { legend: { displayMode: "table", placement: "bottom", calcs: ["lastNotNull", "max"] } },
    targets: targets.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr,
      legendFormat,
      range: true,
    })),
  };
}

/** Lays panels out left to right, two per row (stats four per row), and numbers them. */
function layout(panels) {
  let x = 0;
  let y = 0;
  let rowH = 0;
  return panels.map((p, i) => {
    const { w, h } = p.gridPos;
    if (x + w > 24) {
      x = 0;
      y += rowH;
      rowH = 0;
    }
    const out = { id: i + 1, ...p, gridPos: { w, h, x, y } };
    x += w;
    rowH = Math.max(rowH, h);
    return out;
  });
}

function dashboard(uid, title, description, variables, panels) {
  return {
    uid,
    title,
    description,
    tags: ["ambit", "service-mesh"],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: "10s",
    time: { from: "now-30m", to: "now" },
    timezone: "browser",
    graphTooltip: 1,
    templating: { list: [datasourceVar, ...variables] },
    annotations: { list: [] },
    links: [],
    panels: layout(panels),
  };
}

const STAT = { w: 6, h: 4 };
const ns = 'destination_workload_namespace=~"$namespace"';

// ---------- mesh overview ----------

const overview = dashboard(
  "ambit-mesh-overview",
  "ambit / Mesh overview",
  "Every edge of the mesh: connections (ztunnel, L4) and requests (waypoints, L7).",
  [
    queryVar(
      "namespace",
      "Namespace",
      "label_values(istio_tcp_connections_opened_total, destination_workload_namespace)",
    ),
  ],
  [
    panel(
      "stat",
      "Connections opened / s",
      "New TCP connections accepted by destination ztunnels.",
      "cps",
      [[`sum(rate(istio_tcp_connections_opened_total{reporter="destination",${ns}}[${R}]))`, "connections"]],
      STAT,
    ),
    panel(
      "stat",
      "Requests / s (waypoints)",
      "Requests handled by waypoints.",
      "reqps",
      [[`sum(rate(istio_requests_total{reporter="waypoint",${ns}}[${R}]))`, "requests"]],
      STAT,
    ),
    panel(
      "stat",
      "Request success rate",
      "Share of waypoint requests answered without a 5xx.",
      "percentunit",
      [
        [
          `sum(rate(istio_requests_total{reporter="waypoint",${ns},response_code!~"5.."}[${R}])) / sum(rate(istio_requests_total{reporter="waypoint",${ns}}[${R}]))`,
          "success",
        ],
      ],
      STAT,
    ),
    panel(
      "stat",
      "mTLS share of connections",
      "Connections carried over HBONE (mutual TLS) among all the destination ztunnels saw.",
      "percentunit",
      [
        [
          `sum(rate(istio_tcp_connections_opened_total{reporter="destination",${ns},connection_security_policy="mutual_tls"}[${R}])) / sum(rate(istio_tcp_connections_opened_total{reporter="destination",${ns}}[${R}]))`,
          "mTLS",
        ],
      ],
      STAT,
    ),
    panel(
      "timeseries",
      "Connections by edge",
      "TCP connections opened per second, source workload to destination workload.",
      "cps",
      [
        [
          `sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) (rate(istio_tcp_connections_opened_total{reporter="destination",${ns}}[${R}]))`,
          "{{source_workload_namespace}}/{{source_workload}} → {{destination_workload_namespace}}/{{destination_workload}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Requests by edge and code",
      "Requests per second through waypoints, by source, destination and response code.",
      "reqps",
      [
        [
          `sum by (source_workload, destination_workload, response_code) (rate(istio_requests_total{reporter="waypoint",${ns}}[${R}]))`,
          "{{source_workload}} → {{destination_workload}} {{response_code}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Request duration p50 / p99 by destination",
      "Waypoint request latency (histogram quantiles).",
      "ms",
      [
        [
          `histogram_quantile(0.5, sum by (le, destination_workload) (rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",${ns}}[${R}])))`,
          "p50 {{destination_workload}}",
        ],
        [
          `histogram_quantile(0.99, sum by (le, destination_workload) (rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",${ns}}[${R}])))`,
          "p99 {{destination_workload}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Bytes by edge",
      "Bytes per second sent from source to destination, as the destination ztunnel counted them.",
      "Bps",
      [
        [
          `sum by (source_workload, destination_workload) (rate(istio_tcp_sent_bytes_total{reporter="destination",${ns}}[${R}]))`,
          "{{source_workload}} → {{destination_workload}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "L4 denials by edge",
      "Connections refused by L4 authorization at the destination ztunnel. Empty when nothing was denied.",
      "cps",
      [
        [
          `sum by (source_workload, destination_workload, reason) (rate(ambit_tcp_connections_denied_total{${ns}}[${R}]))`,
          "{{source_workload}} → {{destination_workload}} ({{reason}})",
        ],
      ],
    ),
    panel(
      "timeseries",
      "L7 denials by reason",
      "Requests refused by L7 policy at waypoints. Empty when nothing was denied.",
      "reqps",
      [[`sum by (reason) (rate(ambit_waypoint_denied_total[${R}]))`, "{{reason}}"]],
    ),
  ],
);

// ---------- workload ----------

const wl = 'destination_workload_namespace=~"$namespace",destination_workload=~"$workload"';
const src = 'source_workload_namespace=~"$namespace",source_workload=~"$workload"';
const workload = dashboard(
  "ambit-workload",
  "ambit / Workload",
  "One workload's inbound and outbound traffic.",
  [
    queryVar(
      "namespace",
      "Namespace",
      "label_values(istio_tcp_connections_opened_total, destination_workload_namespace)",
    ),
    queryVar(
      "workload",
      "Workload",
      'label_values(istio_tcp_connections_opened_total{destination_workload_namespace=~"$namespace"}, destination_workload)',
    ),
  ],
  [
    panel(
      "timeseries",
      "Inbound connections by source",
      "Connections opened to the workload per second, by source workload.",
      "cps",
      [
        [
          `sum by (source_workload_namespace, source_workload) (rate(istio_tcp_connections_opened_total{reporter="destination",${wl}}[${R}]))`,
          "{{source_workload_namespace}}/{{source_workload}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Outbound connections by destination",
      "Connections the workload opened per second, by destination service.",
      "cps",
      [
        [
          `sum by (destination_service) (rate(istio_tcp_connections_opened_total{reporter="source",${src}}[${R}]))`,
          "{{destination_service}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Inbound bytes",
      "Bytes per second to and from the workload, as its ztunnel counted them.",
      "Bps",
      [
        [
          `sum(rate(istio_tcp_sent_bytes_total{reporter="destination",${wl}}[${R}]))`,
          "received by the workload",
        ],
        [
          `sum(rate(istio_tcp_received_bytes_total{reporter="destination",${wl}}[${R}]))`,
          "sent by the workload",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Open inbound connections",
      "Connections opened minus closed, as its ztunnel counted them.",
      "short",
      [
        [
          `sum(istio_tcp_connections_opened_total{reporter="destination",${wl}}) - sum(istio_tcp_connections_closed_total{reporter="destination",${wl}})`,
          "open",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Inbound requests by code",
      "Requests to the workload through its waypoint, by response code.",
      "reqps",
      [
        [
          `sum by (response_code) (rate(istio_requests_total{reporter="waypoint",${wl}}[${R}]))`,
          "{{response_code}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Inbound request duration",
      "Latency of requests to the workload through its waypoint.",
      "ms",
      [
        [
          `histogram_quantile(0.5, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",${wl}}[${R}])))`,
          "p50",
        ],
        [
          `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",${wl}}[${R}])))`,
          "p99",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Request and response size",
      "Mean body sizes of requests to the workload.",
      "bytes",
      [
        [
          `sum(rate(istio_request_bytes_sum{reporter="waypoint",${wl}}[${R}])) / sum(rate(istio_request_bytes_count{reporter="waypoint",${wl}}[${R}]))`,
          "request",
        ],
        [
          `sum(rate(istio_response_bytes_sum{reporter="waypoint",${wl}}[${R}])) / sum(rate(istio_response_bytes_count{reporter="waypoint",${wl}}[${R}]))`,
          "response",
        ],
      ],
    ),
    panel(
      "timeseries",
      "Inbound connections by security policy",
      "mutual_tls: carried over HBONE; none: plain text.",
      "cps",
      [
        [
          `sum by (connection_security_policy) (rate(istio_tcp_connections_opened_total{reporter="destination",${wl}}[${R}]))`,
          "{{connection_security_policy}}",
        ],
      ],
    ),
  ],
);

// ---------- ztunnel resources ----------

const node = 'job="ambit-ztunnel",node=~"$node"';
const ztunnel = dashboard(
  "ambit-ztunnel",
  "ambit / ztunnel resources",
  "The node proxies: CPU, memory, event loop, HBONE sessions, enrolled pods, certificates, xDS.",
  [queryVar("node", "Node", 'label_values(ambit_ztunnel_ready{job="ambit-ztunnel"}, node)')],
  [
    panel("timeseries", "CPU", "CPU seconds per second used by each ztunnel.", "percentunit", [
      [`sum by (node) (rate(ambit_process_process_cpu_seconds_total{${node}}[${R}]))`, "{{node}}"],
    ]),
    panel("timeseries", "Resident memory", "Resident set size of each ztunnel.", "bytes", [
      [`sum by (node) (ambit_process_process_resident_memory_bytes{${node}})`, "{{node}}"],
    ]),
    panel("timeseries", "Heap used", "V8 heap in use.", "bytes", [
      [`sum by (node) (ambit_process_nodejs_heap_size_used_bytes{${node}})`, "{{node}}"],
    ]),
    panel(
      "timeseries",
      "Event loop lag p99",
      "How late the event loop runs: the proxy's queueing delay.",
      "s",
      [[`max by (node) (ambit_process_nodejs_eventloop_lag_p99_seconds{${node}})`, "{{node}}"]],
    ),
    panel("timeseries", "Open file descriptors", "Sockets and files held by each ztunnel.", "short", [
      [`sum by (node) (ambit_process_process_open_fds{${node}})`, "{{node}}"],
    ]),
    panel(
      "timeseries",
      "HBONE sessions",
      "HTTP/2 sessions held by the outbound pools and accepted by the inbound listeners.",
      "short",
      [
        [`sum by (node) (ambit_hbone_pool_sessions{${node}})`, "pool {{node}}"],
        [`sum by (node) (ambit_hbone_server_sessions{${node}})`, "server {{node}}"],
      ],
    ),
    panel(
      "stat",
      "Enrolled pods",
      "Pods whose traffic each ztunnel captures.",
      "short",
      [[`sum by (node) (ambit_node_agent_enrolled_pods{${node}})`, "{{node}}"]],
      STAT,
    ),
    panel(
      "stat",
      "Ready",
      "1 once xDS is synced and every enrolled pod is captured.",
      "short",
      [[`min by (node) (ambit_ztunnel_ready{${node}})`, "{{node}}"]],
      STAT,
    ),
    panel(
      "stat",
      "Earliest certificate expiry",
      "Seconds until the first workload certificate held by the ztunnel expires (rotated at half-life).",
      "s",
      [[`min by (node) (ambit_cert_expiry_seconds{${node}})`, "{{node}}"]],
      STAT,
    ),
    panel(
      "stat",
      "xDS connected",
      "1 while the ztunnel's stream to the controller is up.",
      "short",
      [[`min by (node) (ambit_xds_client_connected{${node}})`, "{{node}}"]],
      STAT,
    ),
    panel(
      "timeseries",
      "Connections by direction",
      "Connections each ztunnel opened as source and accepted as destination.",
      "cps",
      [
        [
          `sum by (node, reporter) (rate(istio_tcp_connections_opened_total{${node}}[${R}]))`,
          "{{node}} {{reporter}}",
        ],
      ],
    ),
    panel(
      "timeseries",
      "DNS answers",
      "Questions answered by the ztunnel DNS proxy, by result. Empty when no enrolled pod resolved a name through it.",
      "reqps",
      [[`sum by (node, result) (rate(ambit_dns_queries_total{${node}}[${R}]))`, "{{node}} {{result}}"]],
    ),
  ],
);

// ---------- control plane ----------

const controlPlane = dashboard(
  "ambit-control-plane",
  "ambit / Control plane",
  "The controller: connected proxies, xDS pushes and their latency, NACKs, certificates, rejected objects.",
  [],
  [
    panel(
      "stat",
      "Connected proxies",
      "Proxies (ztunnels and waypoints) with an open xDS stream.",
      "short",
      [["sum(ambit_xds_connected_proxies)", "proxies"]],
      STAT,
    ),
    panel(
      "stat",
      "Certificates signed / min",
      "Workload certificates the CA signed.",
      "short",
      [[`sum(rate(ambit_ca_certificates_signed_total[${R}])) * 60`, "signed"]],
      STAT,
    ),
    panel(
      "stat",
      "Translations / min",
      "Snapshots of the input translated into the mesh model.",
      "short",
      [[`sum(rate(ambit_controller_translations_total[${R}])) * 60`, "translations"]],
      STAT,
    ),
    panel(
      "stat",
      "Rejected objects",
      "Objects (or fields) the controller currently rejects, by kind. Empty when nothing is rejected.",
      "short",
      [["sum by (kind) (ambit_controller_rejected_objects)", "{{kind}}"]],
      STAT,
    ),
    panel("timeseries", "xDS pushes by type", "xDS responses sent per second, by resource type.", "ops", [
      [`sum by (type) (rate(ambit_xds_pushes_total[${R}]))`, "{{type}}"],
    ]),
    panel("timeseries", "Push latency p99", "From a change being published to the proxy's ACK.", "s", [
      [
        `histogram_quantile(0.99, sum by (le, type) (rate(ambit_xds_push_duration_seconds_bucket[${R}])))`,
        "{{type}}",
      ],
    ]),
    panel(
      "timeseries",
      "Proxy ACKs and NACKs",
      "xDS responses as the proxies received them, by job and result.",
      "ops",
      [[`sum by (job, result) (rate(ambit_xds_client_responses_total[${R}]))`, "{{job}} {{result}}"]],
    ),
    panel(
      "timeseries",
      "NACKs by type and reason",
      "xDS responses a proxy rejected. Empty when no proxy NACKed.",
      "ops",
      [[`sum by (type, reason) (rate(ambit_xds_nacks_total[${R}]))`, "{{type}}: {{reason}}"]],
    ),
    panel(
      "timeseries",
      "CA refusals by reason",
      "CreateCertificate requests refused. Empty when nothing was refused.",
      "ops",
      [[`sum by (reason) (rate(ambit_ca_refusals_total[${R}]))`, "{{reason}}"]],
    ),
    panel(
      "timeseries",
      "Proxy xDS reconnects",
      "Streams to the controller that ended and were retried, by job.",
      "ops",
      [[`sum by (job) (rate(ambit_xds_client_reconnects_total[${R}]))`, "{{job}}"]],
    ),
  ],
);

for (const d of [overview, workload, ztunnel, controlPlane]) {
  writeFileSync(join(here, `${d.uid}.json`), `${JSON.stringify(d, null, 2)}\n`);
}

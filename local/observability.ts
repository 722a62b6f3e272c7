// `ambit up --observability` as data: Debian's Prometheus scraping the
// controller, every ztunnel and every waypoint, and Jaeger (v2, all-in-one)
// receiving the waypoints' OTLP spans. Both run as the mesh's own pods in the
// control plane's namespace, bound to its loopback except Jaeger's OTLP
// receiver, which the waypoints reach on the control plane's address.
//
// Prometheus reaches the controller on the control plane's loopback, each
// ztunnel on its node's address and each waypoint on its pod's address (the
// control plane routes every node's pod range), port 15020. ztunnels and
// waypoints come from file_sd target files that the supervisor rewrites when
// waypoints come and go. Everything here is pure: observability-mesh.ts applies it.
import path from "node:path";
import { stringify } from "yaml";
import type { Container } from "../controller/provider/objects.js";
import { AmbitError } from "../core/errors/errors.js";
import { COMPONENT_PORTS, JAEGER_KEY, PROMETHEUS_KEY } from "./supervisor-plan.js";

export const PROMETHEUS_BIN = "/usr/bin/prometheus";
export { JAEGER_KEY, PROMETHEUS_KEY };

/** Ports inside the control plane's namespace. */
export const OBSERVABILITY_PORTS = {
  prometheus: 9090,
  jaegerQuery: 16686,
  jaegerQueryGrpc: 16685,
  otlpGrpc: 4317,
  otlpHttp: 4318,
  jaegerHealth: 13133,
  /** Where a waypoint and ztunnel serve /metrics inside their own namespaces. */
  componentMetrics: 15020,
} as const;

/** Job names: the dashboards select on them. */
export const JOBS = {
  controller: "ambit-controller",
  ztunnel: "ambit-ztunnel",
  waypoint: "ambit-waypoint",
} as const;

export interface ObservabilityOptions {
  /** The mesh's state directory for the observability files (config, targets, TSDB). */
  dir: string;
  /** The control plane's address (Jaeger's OTLP receiver binds to it). */
  controlPlaneIp: string;
  /** Seconds between scrapes (and rule evaluations). */
  scrapeIntervalSeconds: number;
  prometheusBin: string;
  jaegerBin: string;
}

/** A metrics endpoint as Prometheus (in the control plane's namespace) reaches it. */
export interface ScrapeTarget {
  /** Prometheus job. */
  job: (typeof JOBS)[keyof typeof JOBS];
  /** ip:port (also the `instance` label). */
  address: string;
  labels: Record<string, string>;
}

export interface ObservabilityPlan {
  prometheus: { key: string; container: Container; configFile: string; config: string; url: string };
  jaeger: { key: string; container: Container; configFile: string; config: string; url: string };
  /** file_sd target files by job (the controller's job is static). */
  targetFiles: Record<"ztunnel" | "waypoint", string>;
  /** What the waypoints export spans to (AMBIT_OTLP_ENDPOINT). */
  otlpEndpoint: string;
}

export function validateScrapeInterval(seconds: number): number {
  if (!(Number.isFinite(seconds) && seconds >= 0.5 && seconds <= 300))
    throw new AmbitError("CONFIG", `--scrape-interval: '${seconds}' is not a number of seconds (0.5-300)`);
  return seconds;
}

function duration(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${Math.round(seconds * 1000)}ms`;
}

/** prometheus.yml: the controller statically, ztunnels and waypoints from file_sd files. */
export function prometheusConfig(
  controller: string,
  targetFiles: Record<"ztunnel" | "waypoint", string>,
  intervalSeconds: number,
): string {
  const every = duration(intervalSeconds);
  return stringify({
    global: { scrape_interval: every, evaluation_interval: every, scrape_timeout: every },
    scrape_configs: [
      {
        job_name: JOBS.controller,
        static_configs: [{ targets: [controller], labels: { component: "controller" } }],
      },
      {
        job_name: JOBS.ztunnel,
        file_sd_configs: [{ files: [targetFiles.ztunnel], refresh_interval: every }],
      },
      {
        job_name: JOBS.waypoint,
        file_sd_configs: [{ files: [targetFiles.waypoint], refresh_interval: every }],
      },
    ],
  });
}

/** A file_sd file: one group per target with its labels, in address order. */
export function targetFileJson(targets: ScrapeTarget[]): string {
  const groups = [...targets]
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    .map((t) => ({ targets: [t.address], labels: t.labels }));
  return `${JSON.stringify(groups, null, 2)}\n`;
}

/** A node's ztunnel (`ambit up` binds its metrics to the node's address). */
export function ztunnelTarget(node: { name: string; ip: string }): ScrapeTarget {
  return {
    job: JOBS.ztunnel,
    address: `${node.ip}:${OBSERVABILITY_PORTS.componentMetrics}`,
    labels: { component: "ztunnel", node: node.name },
  };
}

/** A waypoint pod (its metrics listen on every address of its namespace). */
export function waypointTarget(pod: {
  key: string;
  ip: string;
  node: string;
  gateway: string;
}): ScrapeTarget {
  const [namespace = "", name = ""] = pod.key.split("/", 2);
  return {
    job: JOBS.waypoint,
    address: `${pod.ip}:${OBSERVABILITY_PORTS.componentMetrics}`,
    labels: { component: "waypoint", gateway: pod.gateway, namespace, pod: name, node: pod.node },
  };
}

/**
 * Jaeger v2's configuration (an OpenTelemetry Collector config): OTLP in on
 * the control plane's address, in-memory storage, query API and UI on loopback.
 */
export function jaegerConfig(controlPlaneIp: string): string {
  const p = OBSERVABILITY_PORTS;
  return stringify({
    service: {
      extensions: ["jaeger_storage", "jaeger_query", "healthcheckv2"],
      pipelines: {
        traces: { receivers: ["otlp"], processors: ["batch"], exporters: ["jaeger_storage_exporter"] },
      },
      // The collector's own metrics would take :8888 and are not scraped here.
      telemetry: { metrics: { level: "none" }, logs: { level: "info" } },
    },
    extensions: {
      healthcheckv2: { use_v2: true, http: { endpoint: `127.0.0.1:${p.jaegerHealth}` } },
      jaeger_query: {
        storage: { traces: "memstore" },
        http: { endpoint: `127.0.0.1:${p.jaegerQuery}` },
        grpc: { endpoint: `127.0.0.1:${p.jaegerQueryGrpc}` },
      },
      jaeger_storage: { backends: { memstore: { memory: { max_traces: 100000 } } } },
    },
    receivers: {
      otlp: {
        protocols: {
          grpc: { endpoint: `${controlPlaneIp}:${p.otlpGrpc}` },
          http: { endpoint: `${controlPlaneIp}:${p.otlpHttp}` },
        },
      },
    },
    // Short batches: a local mesh shows a request's trace within a second.
    processors: { batch: { timeout: "200ms" } },
    exporters: { jaeger_storage_exporter: { trace_storage: "memstore" } },
  });
}

export function observabilityPlan(o: ObservabilityOptions): ObservabilityPlan {
  validateScrapeInterval(o.scrapeIntervalSeconds);
  const p = OBSERVABILITY_PORTS;
  const promDir = path.join(o.dir, "prometheus");
  const targetFiles = {
    ztunnel: path.join(promDir, "targets-ztunnel.json"),
    waypoint: path.join(promDir, "targets-waypoint.json"),
  };
  const promConfigFile = path.join(promDir, "prometheus.yml");
  const jaegerConfigFile = path.join(o.dir, "jaeger", "jaeger.yaml");
  const promListen = `127.0.0.1:${p.prometheus}`;
  return {
    prometheus: {
      key: PROMETHEUS_KEY,
      configFile: promConfigFile,
      config: prometheusConfig(
        `127.0.0.1:${COMPONENT_PORTS.controllerAdmin}`,
        targetFiles,
        o.scrapeIntervalSeconds,
      ),
      url: `http://${promListen}/`,
      container: {
        name: "prometheus",
        image: "prometheus",
        command: [
          o.prometheusBin,
          `--config.file=${promConfigFile}`,
          `--storage.tsdb.path=${path.join(promDir, "data")}`,
          `--web.listen-address=${promListen}`,
          "--storage.tsdb.retention.time=1d",
        ],
        readinessProbe: {
          httpGet: { host: "127.0.0.1", port: p.prometheus, path: "/-/ready" },
          periodSeconds: 1,
        },
      },
    },
    jaeger: {
      key: JAEGER_KEY,
      configFile: jaegerConfigFile,
      config: jaegerConfig(o.controlPlaneIp),
      url: `http://127.0.0.1:${p.jaegerQuery}/`,
      container: {
        name: "jaeger",
        image: "jaeger",
        command: [o.jaegerBin, "--config", jaegerConfigFile],
        readinessProbe: {
          httpGet: { host: "127.0.0.1", port: p.jaegerHealth, path: "/status" },
          periodSeconds: 1,
        },
      },
    },
    targetFiles,
    otlpEndpoint: `http://${o.controlPlaneIp}:${p.otlpHttp}`,
  };
}

/** What `ambit status` reads back (state file `extra.observability`). */
export interface ObservabilityStatus {
  prometheus: {
    /** Open this from the host (a loopback forward into the control plane's namespace). */
    url: string;
    /** The same inside the control plane's namespace. */
    meshUrl: string;
    scrapeIntervalSeconds: number;
  };
  jaeger: { url: string; meshUrl: string; otlpEndpoint: string };
}

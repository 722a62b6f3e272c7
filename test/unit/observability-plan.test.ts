// The plan of `ambit up --observability` (pure): Prometheus' config (the
// controller statically, ztunnels and waypoints from file_sd files), the
// target files, Jaeger's collector config, and the two component pods.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { parse } from "yaml";
import {
  jaegerConfig,
  observabilityPlan,
  prometheusConfig,
  targetFileJson,
  validateScrapeInterval,
  waypointTarget,
  ztunnelTarget,
} from "../../local/observability.js";
import { isComponentKey } from "../../local/supervisor-plan.js";

const files = {
  ztunnel: "/o/prometheus/targets-ztunnel.json",
  waypoint: "/o/prometheus/targets-waypoint.json",
};

t.test("prometheus config: controller static, ztunnels and waypoints from file_sd", async (t) => {
  const cfg = parse(prometheusConfig("127.0.0.1:15014", files, 1)) as {
    global: Record<string, string>;
    scrape_configs: {
      job_name: string;
      static_configs?: unknown[];
      file_sd_configs?: { files: string[] }[];
    }[];
  };
  t.same(cfg.global, { scrape_interval: "1s", evaluation_interval: "1s", scrape_timeout: "1s" });
  t.same(
    cfg.scrape_configs.map((j) => j.job_name),
    ["ambit-controller", "ambit-ztunnel", "ambit-waypoint"],
  );
  t.same(cfg.scrape_configs[0]!.static_configs, [
    { targets: ["127.0.0.1:15014"], labels: { component: "controller" } },
  ]);
  t.same(cfg.scrape_configs[1]!.file_sd_configs![0]!.files, [files.ztunnel]);
  t.same(cfg.scrape_configs[2]!.file_sd_configs![0]!.files, [files.waypoint]);
  t.match(prometheusConfig("x:1", files, 0.5), /scrape_interval: 500ms/);
});

t.test("target files: ztunnel at its node's address, waypoint at its pod's, sorted", async (t) => {
  const json = JSON.parse(
    targetFileJson([
      ztunnelTarget({ name: "node-2", ip: "10.213.0.11" }),
      ztunnelTarget({ name: "node-1", ip: "10.213.0.10" }),
    ]),
  );
  t.same(json, [
    { targets: ["10.213.0.10:15020"], labels: { component: "ztunnel", node: "node-1" } },
    { targets: ["10.213.0.11:15020"], labels: { component: "ztunnel", node: "node-2" } },
  ]);
  t.same(
    JSON.parse(
      targetFileJson([
        waypointTarget({
          key: "shop/waypoint-abc",
          ip: "10.213.2.5",
          node: "node-2",
          gateway: "shop/waypoint",
        }),
      ]),
    ),
    [
      {
        targets: ["10.213.2.5:15020"],
        labels: {
          component: "waypoint",
          gateway: "shop/waypoint",
          namespace: "shop",
          pod: "waypoint-abc",
          node: "node-2",
        },
      },
    ],
  );
  t.same(JSON.parse(targetFileJson([])), [], "no waypoints: an empty file, which Prometheus accepts");
});

t.test("jaeger: OTLP on the control plane's address, query and health on loopback", async (t) => {
  const cfg = parse(jaegerConfig("10.213.0.2")) as {
    receivers: { otlp: { protocols: { http: { endpoint: string }; grpc: { endpoint: string } } } };
    extensions: {
      jaeger_query: { http: { endpoint: string } };
      healthcheckv2: { http: { endpoint: string } };
    };
    service: { pipelines: { traces: { receivers: string[]; exporters: string[] } } };
  };
  t.equal(cfg.receivers.otlp.protocols.http.endpoint, "10.213.0.2:4318");
  t.equal(cfg.receivers.otlp.protocols.grpc.endpoint, "10.213.0.2:4317");
  t.equal(cfg.extensions.jaeger_query.http.endpoint, "127.0.0.1:16686");
  t.equal(cfg.extensions.healthcheckv2.http.endpoint, "127.0.0.1:13133");
  t.same(cfg.service.pipelines.traces, {
    receivers: ["otlp"],
    processors: ["batch"],
    exporters: ["jaeger_storage_exporter"],
  });
});

t.test("plan: component pods, files under the mesh's directory, OTLP endpoint", async (t) => {
  const plan = observabilityPlan({
    dir: "/run/ambit/local/observability",
    controlPlaneIp: "10.213.0.2",
    scrapeIntervalSeconds: 2,
    prometheusBin: "/usr/bin/prometheus",
    jaegerBin: "/root/.cache/ambit/bin/jaeger",
  });
  t.equal(plan.prometheus.key, "ambit-system/prometheus");
  t.equal(plan.jaeger.key, "ambit-system/jaeger");
  t.ok(
    isComponentKey(plan.prometheus.key) && isComponentKey(plan.jaeger.key),
    "the supervisor keeps them running",
  );
  t.same(plan.prometheus.container.command, [
    "/usr/bin/prometheus",
    "--config.file=/run/ambit/local/observability/prometheus/prometheus.yml",
    "--storage.tsdb.path=/run/ambit/local/observability/prometheus/data",
    "--web.listen-address=127.0.0.1:9090",
    "--storage.tsdb.retention.time=1d",
  ]);
  t.same(plan.prometheus.container.readinessProbe?.httpGet, {
    host: "127.0.0.1",
    port: 9090,
    path: "/-/ready",
  });
  t.same(plan.jaeger.container.command, [
    "/root/.cache/ambit/bin/jaeger",
    "--config",
    "/run/ambit/local/observability/jaeger/jaeger.yaml",
  ]);
  t.equal(plan.otlpEndpoint, "http://10.213.0.2:4318");
  t.equal(plan.prometheus.url, "http://127.0.0.1:9090/");
  t.equal(plan.jaeger.url, "http://127.0.0.1:16686/");
  t.match(plan.prometheus.config, /targets-waypoint\.json/);
});

t.test("scrape interval bounds", async (t) => {
  t.equal(validateScrapeInterval(1), 1);
  t.throws(() => validateScrapeInterval(0), { code: "CONFIG" });
  t.throws(() => validateScrapeInterval(Number.NaN), /--scrape-interval/);
});

// Prometheus' own checker on the generated config (target files included), where it is installed.
t.test(
  "promtool accepts the config",
  { skip: !fs.existsSync("/usr/bin/promtool") && "no promtool (scripts/setup-system.sh installs it)" },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-obs-plan-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const plan = observabilityPlan({
      dir,
      controlPlaneIp: "10.213.0.2",
      scrapeIntervalSeconds: 1,
      prometheusBin: "/usr/bin/prometheus",
      jaegerBin: "/x/jaeger",
    });
    fs.mkdirSync(path.dirname(plan.prometheus.configFile), { recursive: true });
    fs.writeFileSync(plan.prometheus.configFile, plan.prometheus.config);
    fs.writeFileSync(
      plan.targetFiles.ztunnel,
      targetFileJson([ztunnelTarget({ name: "node-1", ip: "10.213.0.10" })]),
    );
    fs.writeFileSync(plan.targetFiles.waypoint, targetFileJson([]));
    const r = spawnSync("/usr/bin/promtool", ["check", "config", plan.prometheus.configFile], {
      encoding: "utf8",
    });
    t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  },
);

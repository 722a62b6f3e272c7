// The Prometheus plan of `ambit up --observability`: one job per component
// kind with node/gateway labels, empty jobs left out, arguments and URL.
import t from "tap";
import { parse } from "yaml";
import { prometheusConfig, prometheusPlan } from "../../local/observability.js";

t.test("prometheus config scrapes the controller, every ztunnel and waypoint", async (t) => {
  const cfg = parse(
    prometheusConfig({
      controller: "10.213.0.2:15014",
      ztunnels: [
        { node: "node-1", address: "10.213.0.3:15020" },
        { node: "node-2", address: "10.213.0.4:15020" },
      ],
      waypoints: [{ gateway: "demo/waypoint", address: "10.244.1.9:15020" }],
    }),
  ) as { global: Record<string, string>; scrape_configs: { job_name: string; static_configs: unknown[] }[] };
  t.equal(cfg.global.scrape_interval, "5s");
  t.same(
    cfg.scrape_configs.map((j) => j.job_name),
    ["ambit-controller", "ambit-ztunnel", "ambit-waypoint"],
  );
  t.same(cfg.scrape_configs[1]!.static_configs, [
    { targets: ["10.213.0.3:15020"], labels: { component: "ztunnel", node: "node-1" } },
    { targets: ["10.213.0.4:15020"], labels: { component: "ztunnel", node: "node-2" } },
  ]);
  t.same(cfg.scrape_configs[2]!.static_configs, [
    { targets: ["10.244.1.9:15020"], labels: { component: "waypoint", gateway: "demo/waypoint" } },
  ]);
});

t.test("no waypoints: no empty job; plan arguments", async (t) => {
  const plan = prometheusPlan("/run/ambit/local/prometheus", {
    controller: "10.213.0.2:15014",
    ztunnels: [],
    waypoints: [],
  });
  const cfg = parse(plan.config) as { scrape_configs: { job_name: string }[] };
  t.same(
    cfg.scrape_configs.map((j) => j.job_name),
    ["ambit-controller"],
  );
  t.equal(plan.url, "http://127.0.0.1:9090/");
  t.same(plan.args, [
    "--config.file=/run/ambit/local/prometheus/prometheus.yml",
    "--storage.tsdb.path=/run/ambit/local/prometheus/data",
    "--web.listen-address=127.0.0.1:9090",
    "--storage.tsdb.retention.time=1d",
  ]);
});

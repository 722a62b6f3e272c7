// `ambit controller --metrics-host HOST`: Prometheus scrapes the controller
// off its host (a cluster: the pod IP) on a listener that serves /metrics and
// nothing else; the admin port's debug paths (model, proxies, root
// certificate) stay on loopback.

import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { parse } from "yaml";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      })
      .on("error", reject);
  });
}

t.test("config: --metrics-host and AMBIT_METRICS_HOST; off by default", async (t) => {
  const base = ["--config-dir", "/nonexistent"];
  const off = parseControllerConfig(base, {});
  t.not(off, "help");
  if (off === "help") return;
  t.equal(off.metricsHost, undefined, "no metrics listener unless asked");
  t.equal(off.metricsPort, 15020);
  const env = parseControllerConfig(base, { AMBIT_METRICS_HOST: "10.244.0.7" });
  t.equal(env !== "help" && env.metricsHost, "10.244.0.7");
  const flag = parseControllerConfig([...base, "--metrics-host", "0.0.0.0", "--metrics-port", "9102"], {
    AMBIT_METRICS_HOST: "10.244.0.7",
  });
  t.match(flag, { metricsHost: "0.0.0.0", metricsPort: 9102 }, "the flag wins over the environment");
});

t.test("the metrics listener answers /metrics and nothing else", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ambit-ctl-metrics-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "empty.yaml"), "");
  const cfg = parseControllerConfig(
    [
      "--config-dir",
      dir,
      "--ca-dir",
      join(dir, "ca"),
      "--listen",
      "127.0.0.1",
      "--xds-port",
      "0",
      "--secure-port=-1",
      "--admin-port",
      "0",
      "--metrics-host",
      "127.0.0.1",
      "--metrics-port",
      "0",
    ],
    {},
  );
  if (cfg === "help") throw new Error("unexpected help");
  const app = new ControllerApp(cfg);
  await app.start();
  t.teardown(() => app.close());
  t.ok(app.ports.metrics > 0, "bound");
  t.not(app.ports.metrics, app.ports.admin, "its own port");

  const m = await get(app.ports.metrics, "/metrics");
  t.equal(m.status, 200);
  t.match(m.body, /# TYPE ambit_/, "the controller's ambit_ metrics");
  for (const path of ["/debug/model", "/debug/proxies", "/debug/root-cert", "/debug/errors", "/ready", "/"]) {
    const r = await get(app.ports.metrics, path);
    t.equal(r.status, 404, `${path} is not served on the metrics listener`);
  }
  const admin = await get(app.ports.admin, "/debug/model");
  t.equal(admin.status, 200, "the debug paths stay on the admin port");
});

t.test(
  "manifests/observability binds the controller's metrics to the pod IP and scrapes 15020",
  async (t) => {
    const dir = `${process.cwd()}/manifests/observability`;
    const k = parse(readFileSync(`${dir}/kustomization.yaml`, "utf8")) as { patches: { path: string }[] };
    t.ok(
      k.patches.some((p) => p.path === "controller-metrics.yaml"),
      "the patch is applied",
    );
    const d = parse(readFileSync(`${dir}/controller-metrics.yaml`, "utf8")) as {
      spec: {
        template: {
          metadata: { annotations: Record<string, string> };
          spec: { containers: { name: string; env: { name: string; valueFrom?: unknown }[] }[] };
        };
      };
    };
    t.equal(d.spec.template.metadata.annotations["prometheus.io/port"], "15020");
    const env = d.spec.template.spec.containers.find((c) => c.name === "controller")!.env;
    t.same(env.find((e) => e.name === "AMBIT_METRICS_HOST")?.valueFrom, {
      fieldRef: { fieldPath: "status.podIP" },
    });
    t.match(env.find((e) => e.name === "AMBIT_WAYPOINT_OTLP_ENDPOINT")?.valueFrom, {
      configMapKeyRef: { name: "ambit-waypoint-telemetry", key: "AMBIT_OTLP_ENDPOINT", optional: true },
    });
    const cm = parse(readFileSync(`${dir}/scrape-config.yaml`, "utf8")) as { data: Record<string, string> };
    const jobs = parse(cm.data["ambit-scrape-configs.yaml"]!) as {
      scrape_configs: {
        job_name: string;
        relabel_configs: { replacement?: string; target_label?: string }[];
      }[];
    };
    const job = jobs.scrape_configs.find((j) => j.job_name === "ambit-controller")!;
    t.equal(job.relabel_configs.find((r) => r.target_label === "__address__")?.replacement, "$1:15020");
  },
);

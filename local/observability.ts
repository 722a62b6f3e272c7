// `ambit up --observability` (not wired yet): Debian's Prometheus scraping
// every ztunnel, waypoint and the controller of a local mesh. The plan
// (config file, arguments) is pure data; startPrometheus applies it.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { AmbitError } from "../core/errors/errors.js";

export const PROMETHEUS_BIN = "/usr/bin/prometheus";
export const DEFAULT_PROMETHEUS_LISTEN = "127.0.0.1:9090";

export interface ScrapeTargets {
  /** host:port of the controller's admin (serves /metrics). */
  controller: string;
  /** node name → host:port of its ztunnel's metrics. */
  ztunnels: { node: string; address: string }[];
  /** NS/NAME → host:port of the waypoint's metrics. */
  waypoints: { gateway: string; address: string }[];
}

/** prometheus.yml for a mesh: one job per component kind, labels naming node or gateway. */
export function prometheusConfig(t: ScrapeTargets, intervalSeconds = 5): string {
  const job = (name: string, targets: { address: string; labels: Record<string, string> }[]) => ({
    job_name: name,
    metrics_path: "/metrics",
    static_configs: targets.map((x) => ({ targets: [x.address], labels: x.labels })),
  });
  return stringify({
    global: { scrape_interval: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    scrape_configs: [
      job("ambit-controller", [{ address: t.controller, labels: { component: "controller" } }]),
      job(
        "ambit-ztunnel",
        t.ztunnels.map((z) => ({ address: z.address, labels: { component: "ztunnel", node: z.node } })),
      ),
      job(
        "ambit-waypoint",
        t.waypoints.map((w) => ({
          address: w.address,
          labels: { component: "waypoint", gateway: w.gateway },
        })),
      ),
    ].filter((j) => j.static_configs.length > 0),
  });
}

export interface PrometheusPlan {
  configFile: string;
  config: string;
  args: string[];
  url: string;
}

export function prometheusPlan(
  dir: string,
  targets: ScrapeTargets,
  listen = DEFAULT_PROMETHEUS_LISTEN,
): PrometheusPlan {
  const configFile = path.join(dir, "prometheus.yml");
  return {
    configFile,
    config: prometheusConfig(targets),
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=${listen}`,
      "--storage.tsdb.retention.time=1d",
    ],
    url: `http://${listen}/`,
  };
}

/** Writes the config and starts Prometheus; resolves once it answers /-/ready. */
export async function startPrometheus(
  plan: PrometheusPlan,
  logFile: string,
  bin = PROMETHEUS_BIN,
): Promise<{ url: string; pid: number; close(): Promise<void> }> {
  if (!existsSync(bin))
    throw new AmbitError(
      "OBSERVABILITY",
      `${bin} missing: run scripts/setup-system.sh (installs prometheus)`,
    );
  mkdirSync(path.dirname(plan.configFile), { recursive: true });
  writeFileSync(plan.configFile, plan.config);
  const out = openSync(logFile, "a");
  const child = spawn(bin, plan.args, { stdio: ["ignore", out, out] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new AmbitError("OBSERVABILITY", `prometheus exited; see ${logFile}`);
    try {
      const r = await fetch(`${plan.url}-/ready`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGTERM");
      throw new AmbitError("OBSERVABILITY", `prometheus not ready after 30 s; see ${logFile}`);
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
  }
  return {
    url: plan.url,
    pid: child.pid!,
    close: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

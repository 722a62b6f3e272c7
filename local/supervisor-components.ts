// The containers `ambit up` runs besides the user's pods (pure): the
// controller, a ztunnel per node, a waypoint per waypoint Gateway, and the
// capture gate that is every pod's first init container. Each runs this
// build's `ambit` entry point with the mesh's files and addresses.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Container, EnvVar } from "../controller/provider/objects.js";
import { ztunnelNodeFlags } from "../ztunnel/launch-flags.js";
import type { MeshLayout } from "./network.js";
import { COMPONENT_PORTS, type MeshPaths } from "./supervisor-plan.js";

export interface ComponentContext {
  /** This build's cli/main.js. */
  cliMain: string;
  paths: MeshPaths;
  layout: MeshLayout;
  /** The directory of YAML (absolute). */
  dir: string;
  /** Environment every component gets (log level...). */
  env: EnvVar[];
  /** `ambit up --observability`: where waypoints send their spans (OTLP/HTTP). */
  otlpEndpoint?: string;
}

/**
 * The environment passed on to components: AMBIT_LOG_LEVEL, AMBIT_DEBUG,
 * AMBIT_CERT_TTL (short certificate lifetimes for fault tests) and
 * AMBIT_MEMORY_LIMIT_MB (the ztunnels' memory admission) when set, then extras.
 */
export function componentEnv(processEnv: NodeJS.ProcessEnv, extra: Record<string, string> = {}): EnvVar[] {
  const env: Record<string, string> = {};
  for (const k of ["AMBIT_LOG_LEVEL", "AMBIT_DEBUG", "AMBIT_CERT_TTL", "AMBIT_MEMORY_LIMIT_MB"])
    if (processEnv[k]) env[k] = processEnv[k]!;
  Object.assign(env, extra);
  return Object.entries(env).map(([name, value]) => ({ name, value }));
}

function xdsAddress(ctx: ComponentContext): string {
  return `${ctx.layout.controlPlane.ip}:${COMPONENT_PORTS.xds}`;
}

export function controllerContainer(ctx: ComponentContext): Container {
  const p = ctx.paths;
  return {
    name: "controller",
    image: "ambit",
    command: [
      process.execPath,
      ctx.cliMain,
      "controller",
      ...[
        "--config-dir",
        ctx.dir,
        "--facts-file",
        p.factsFile,
        "--tokens-file",
        p.tokensFile,
        "--ca-dir",
        p.caDir,
      ],
      ...[
        "--listen",
        "0.0.0.0",
        "--xds-port",
        String(COMPONENT_PORTS.xds),
        "--secure-port",
        String(COMPONENT_PORTS.secure),
      ],
      ...["--admin-port", String(COMPONENT_PORTS.controllerAdmin), "--admin-socket", p.controllerSocket],
      ...["--serving-ip", ctx.layout.controlPlane.ip],
    ],
    // The dashboard also on a Unix socket (the supervisor forwards the host's 127.0.0.1:15080 to it),
    // scraping every node's ztunnel from its first moment (not only once they reconnect after a restart).
    env: [
      ...ctx.env,
      { name: "AMBIT_DASHBOARD_SOCKET", value: p.dashboardSocket },
      {
        name: "AMBIT_DASHBOARD_TARGETS",
        value: ctx.layout.nodes
          .map((n) => `http://${n.ip}:${COMPONENT_PORTS.ztunnelMetrics}/metrics`)
          .join(","),
      },
    ],
    readinessProbe: {
      httpGet: { host: "127.0.0.1", port: COMPONENT_PORTS.controllerAdmin, path: "/ready" },
      periodSeconds: 2,
    },
  };
}

function metricsHostArgs(ctx: ComponentContext, node: string): string[] {
  const ip = ctx.layout.nodes.find((n) => n.name === node)?.ip;
  return ip ? ["--metrics-host", ip] : [];
}

/** Drain bound of the local ztunnels (seconds): `ambit upgrade --drain-seconds` may end a drain sooner, not later. */
export const ZTUNNEL_DRAIN_SECONDS = 600;

export function ztunnelContainer(
  ctx: ComponentContext,
  node: string,
  opts: { readinessPort?: number } = {},
): Container {
  // An upgrade's new ztunnel runs beside the old one, which holds the usual readiness port.
  const readinessPort = opts.readinessPort ?? COMPONENT_PORTS.ztunnelReadiness;
  const p = ctx.paths;
  return {
    name: "ztunnel",
    image: "ambit",
    command: [
      process.execPath,
      // V8 heap flags (young generation, old-space guard): ztunnel/launch-flags.ts, the same for every launcher.
      ...ztunnelNodeFlags(),
      ctx.cliMain,
      "ztunnel",
      ...["--node", node, "--xds", xdsAddress(ctx), "--token-file", p.nodeTokenFile(node)],
      ...["--pods-file", p.podsFile(node), "--admin-socket", p.ztunnelSocket(node)],
      // Metrics on the node's address: the controller's dashboard (and Prometheus) scrape them from the fabric.
      ...metricsHostArgs(ctx, node),
      // Long, for `ambit upgrade` (the old ztunnel drains while the new one
      // serves). `ambit down` stops the pods first, so nothing is left to
      // drain by then, and the runner's grace cap bounds it anyway.
      ...["--drain-seconds", String(ZTUNNEL_DRAIN_SECONDS)],
      ...(readinessPort !== COMPONENT_PORTS.ztunnelReadiness
        ? ["--readiness-port", String(readinessPort)]
        : []),
    ],
    env: ctx.env,
    readinessProbe: {
      httpGet: { host: "127.0.0.1", port: readinessPort, path: "/healthz/ready" },
      periodSeconds: 2,
    },
  };
}

/** `ambit waypoint` for a pod the local provider made for a waypoint Gateway (`ns.name` in its label). */
export function waypointContainer(
  ctx: ComponentContext,
  gatewayLabel: string,
  node: string,
  serviceAccount: string,
): Container {
  const dot = gatewayLabel.indexOf(".");
  const gateway = `${gatewayLabel.slice(0, dot)}/${gatewayLabel.slice(dot + 1)}`;
  return {
    name: "waypoint",
    image: "ambit",
    command: [
      process.execPath,
      ctx.cliMain,
      "waypoint",
      ...["--gateway", gateway, "--xds", xdsAddress(ctx), "--token-file", ctx.paths.nodeTokenFile(node)],
      ...["--service-account", serviceAccount, "--drain-seconds", "2"],
    ],
    env: [
      ...ctx.env,
      { name: "AMBIT_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
      ...(ctx.otlpEndpoint ? [{ name: "AMBIT_OTLP_ENDPOINT", value: ctx.otlpEndpoint }] : []),
    ],
    ports: [{ name: "hbone", containerPort: 15008 }],
    readinessProbe: { httpGet: { port: 15021, path: "/" }, periodSeconds: 2 },
  };
}

/** The init container that holds a pod's containers until its traffic is captured (see supervisor-gate.ts). */
export function captureGateContainer(ctx: ComponentContext, key: string): Container {
  const gate = path.join(path.dirname(fileURLToPath(import.meta.url)), "supervisor-gate.js");
  return {
    name: "ambit-capture-wait",
    image: "ambit",
    command: [process.execPath, gate, ctx.paths.controllerSocket, key, "30"],
  };
}

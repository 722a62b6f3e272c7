// Reading what the mesh's components hold, over their admin HTTP: the Unix
// sockets a local mesh's state file names (`--mesh-id`), or a URL for a
// cluster (`--admin http://host:15000`). Shared by `ambit why`,
// `ambit config-dump` and `ambit check`.
import http from "node:http";
import { AmbitError } from "../../core/errors/errors.js";
import { readState } from "../../local/state.js";
import { meshPaths } from "../../local/supervisor-plan.js";
import type { ModelView, WhyViews, ZtunnelView } from "./engine.js";

/**
 * Where a component's admin HTTP is: a Unix socket, an http:// base URL, or
 * host:port inside a network namespace (a local waypoint's admin port lives
 * in its pod's namespace; reaching it needs root, as the local mesh does).
 */
export type AdminTarget = { socket: string } | { url: string } | NetnsAdmin;

export interface NetnsAdmin {
  /** /var/run/netns/... */
  netns: string;
  host: string;
  port: number;
}

export function describeTarget(t: AdminTarget): string {
  if ("socket" in t) return t.socket;
  if ("url" in t) return t.url;
  return `${t.host}:${t.port} in ${t.netns}`;
}

function isNetnsAdmin(v: unknown): v is NetnsAdmin {
  const o = v as Partial<NetnsAdmin> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    typeof o.netns === "string" &&
    typeof o.host === "string" &&
    typeof o.port === "number"
  );
}

export async function getAdmin(
  t: AdminTarget,
  path: string,
  timeoutMs = 3000,
): Promise<{ status: number; body: string }> {
  let opts: http.RequestOptions;
  if ("socket" in t) opts = { socketPath: t.socket, path, timeout: timeoutMs };
  else if ("url" in t) opts = { ...urlOpts(t.url, path), timeout: timeoutMs };
  else {
    // Loaded on demand: only a netns target needs the native setns binding.
    const { connectInNetnsNow } = await import("../../ztunnel/node-agent/native.js");
    const sock = connectInNetnsNow(t.netns, { host: t.host, port: t.port });
    opts = { host: t.host, port: t.port, path, timeout: timeoutMs, createConnection: () => sock };
  }
  return new Promise((resolve, reject) => {
    const req = http.get(opts, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

function urlOpts(base: string, path: string): http.RequestOptions {
  const u = new URL(path, base.endsWith("/") ? base : `${base}/`);
  return { host: u.hostname, port: u.port || 80, path: u.pathname + u.search };
}

/** GET and parse JSON; the error names the component and where it was asked. */
export async function adminJsonAt<T>(t: AdminTarget, path: string, what: string): Promise<T> {
  let r: { status: number; body: string };
  try {
    r = await getAdmin(t, path);
  } catch (e) {
    throw new AmbitError(
      "LOCAL_STATE",
      `${what} does not answer on ${describeTarget(t)}: ${(e as Error).message}`,
    );
  }
  if (r.status !== 200)
    throw new AmbitError("LOCAL_STATE", `${what}: ${path} answered ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as T;
}

export interface LocalTargets {
  meshId: string;
  controller: AdminTarget;
  ztunnels: Record<string, AdminTarget>;
  /** Waypoints by `<ns>/<name>`: the admin addresses the state file records (`extra.waypointAdmin`). */
  waypoints: Record<string, AdminTarget>;
}

export function localTargets(meshId: string): LocalTargets {
  const state = readState(meshId);
  if (!state)
    throw new AmbitError(
      "LOCAL_STATE",
      `no local mesh '${meshId}' is up (start one with 'ambit up DIR', or give --admin URL)`,
    );
  const paths = meshPaths(meshId);
  const ztunnels: Record<string, AdminTarget> = {};
  for (const n of state.layout.nodes) ztunnels[n.name] = { socket: paths.ztunnelSocket(n.name) };
  const waypoints: Record<string, AdminTarget> = {};
  const recorded = state.extra?.waypointAdmin;
  if (recorded && typeof recorded === "object")
    for (const [k, v] of Object.entries(recorded as Record<string, unknown>)) {
      if (typeof v === "string") waypoints[k] = { socket: v };
      else if (isNetnsAdmin(v)) waypoints[k] = { netns: v.netns, host: v.host, port: v.port };
    }
  return { meshId, controller: { socket: paths.controllerSocket }, ztunnels, waypoints };
}

/** The ztunnel config dump's parts that `why` and `check` read. */
export interface ZtunnelDump {
  node: string;
  ready: boolean;
  xds: {
    connected: boolean;
    perType: Record<string, { acked: number; nacked: number; lastError?: string; resources: number }>;
  };
  state: ModelView;
  enrolledPods: { key: string; ip: string; netnsPath: string }[];
  certificates: {
    identity: string;
    state: string;
    notAfter?: string;
    rotateAt?: string;
    failures: number;
    lastError?: string;
  }[];
  connections: Record<string, number>;
  hboneSessions: number;
}

/** Everything `why` needs; components that do not answer are left out (the engine says so). */
export async function collectViews(t: LocalTargets): Promise<WhyViews> {
  const model = await adminJsonAt<ModelView>(t.controller, "/debug/model", "the controller");
  const ztunnels: Record<string, ZtunnelView> = {};
  await Promise.all(
    Object.entries(t.ztunnels).map(async ([node, target]) => {
      try {
        const d = await adminJsonAt<ZtunnelDump>(target, "/config_dump", `ztunnel-${node}`);
        ztunnels[node] = { ready: d.ready, enrolledIps: d.enrolledPods.map((p) => p.ip), state: d.state };
      } catch {
        // Not answering: the engine falls back to the controller's model and notes it.
      }
    }),
  );
  const waypoints: WhyViews["waypoints"] = {};
  await Promise.all(
    Object.entries(t.waypoints).map(async ([gw, target]) => {
      try {
        const d = await adminJsonAt<{ services: WhyViews["waypoints"][string] }>(
          target,
          "/config_dump",
          `waypoint ${gw}`,
        );
        waypoints[gw] = d.services;
      } catch {
        // Same: the answer notes that the waypoint's configuration is not known.
      }
    }),
  );
  return { model, ztunnels, waypoints };
}

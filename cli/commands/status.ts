// `ambit status [--json]`: the local mesh as its state file and its
// controller see it: nodes and their ztunnels, pods with IP, node,
// enrolment, identity and readiness, and the configuration errors.
import { parseArgs } from "node:util";
import type { MeshService, MeshWorkload } from "../../core/model/types.js";
import { alive } from "../../local/network.js";
import type { ObservabilityStatus } from "../../local/observability.js";
import type { MeshState } from "../../local/state.js";
import { readState } from "../../local/state.js";
import { adminJson } from "../../local/supervisor-logs.js";
import {
  COMPONENT_PORTS,
  CONTROLLER_KEY,
  isComponentKey,
  JAEGER_KEY,
  meshPaths,
  PROMETHEUS_KEY,
  resolveMeshId,
  ztunnelKey,
} from "../../local/supervisor-plan.js";
import type { ZtunnelPods } from "../../local/supervisor-upgrade.js";

export const STATUS_HELP = `usage: ambit status [--json] [--mesh-id ID]

Shows the local mesh: nodes and their ztunnels, every pod with its IP, node,
enrolment (captured by ztunnel or plain), SPIFFE identity and readiness, and
the file/object/field errors the controller found in the directory. With
'ambit up --observability': the URLs of Prometheus and Jaeger on this host.

example:
  ambit status
  ambit status --json | jq '.pods[] | select(.enrolled)'
`;

export interface ObjectProblem {
  code: string;
  message: string;
  object?: unknown;
  field?: string;
}

export interface MeshStatus {
  meshId: string;
  dir?: string;
  createdAt: string;
  supervisor: { pid?: number; running: boolean };
  /** The dashboard on this host (the supervisor forwards it to the controller). */
  dashboard?: string;
  controller: {
    ready: boolean;
    xds: string;
    adminSocket: string;
    /** Set when the controller did not answer. */
    unreachable?: string;
    translatedAt?: string;
  };
  nodes: {
    name: string;
    ip: string;
    podCidr: string;
    ztunnel: {
      ready: boolean;
      restarts: number;
      adminSocket: string;
      /** The pod of the node's current ztunnel (another one than the first after `ambit upgrade`). */
      pod?: string;
      /** Old ztunnels still draining after `ambit upgrade`, with their pids. */
      draining?: { pod: string; pid?: number; since: string; deadline: string }[];
    };
  }[];
  pods: {
    key: string;
    namespace: string;
    name: string;
    node: string;
    ip: string;
    ready: boolean;
    restarts: number;
    /** Captured by the node's ztunnel (the controller says so); undefined when the controller is unreachable. */
    enrolled?: boolean;
    identity?: string;
    /** Why the pod does not run (refused by the runner, or failed). */
    failed?: string;
  }[];
  services: { key: string; hostname: string; vips: string[]; ports: string[] }[];
  errors: ObjectProblem[];
  warnings: ObjectProblem[];
  /** Gateway and route status conditions, as the controller computed them. */
  conditions?: { object: string; conditions: string[] }[];
  /** `ambit up --observability`: Prometheus and Jaeger, their URLs on this host and inside the mesh. */
  observability?: {
    prometheus: ObservabilityStatus["prometheus"] & { ready: boolean };
    jaeger: ObservabilityStatus["jaeger"] & { ready: boolean };
  };
}

/** A node's ztunnel: the current pod (`extra.ztunnels`, kept by `ambit upgrade`) and the draining ones. */
function ztunnelStatus(
  state: MeshState,
  node: string,
  adminSocket: string,
): MeshStatus["nodes"][number]["ztunnel"] {
  const pods = (state.extra?.ztunnels ?? {}) as ZtunnelPods;
  const current = pods[node]?.current ?? ztunnelKey(node);
  const draining = (pods[node]?.draining ?? []).map((d) => {
    const pid = state.processes.find((p) => p.name === `${d.key}/ztunnel`)?.pid;
    return { pod: d.key, ...(pid ? { pid } : {}), since: d.since, deadline: d.deadline };
  });
  return {
    ready: Boolean(state.pods[current]?.ready),
    restarts: restartsOf(state, current),
    adminSocket,
    pod: current,
    ...(draining.length > 0 ? { draining } : {}),
  };
}

function restartsOf(state: MeshState, key: string): number {
  return Object.values(state.pods[key]?.restarts ?? {}).reduce((a, b) => a + b, 0);
}

/** Everything `ambit status` shows, from the state file and the controller's admin socket. */
export async function collectStatus(meshId: string): Promise<MeshStatus | undefined> {
  const state = readState(meshId);
  if (!state) return undefined;
  const paths = meshPaths(meshId);
  const ownerPid =
    typeof state.extra?.supervisorPid === "number" ? state.extra.supervisorPid : state.ownerPid;
  const status: MeshStatus = {
    meshId,
    ...(state.dir ? { dir: state.dir } : {}),
    createdAt: state.createdAt,
    supervisor: { ...(ownerPid ? { pid: ownerPid } : {}), running: ownerPid ? alive(ownerPid) : false },
    ...(typeof state.extra?.dashboard === "string" ? { dashboard: state.extra.dashboard } : {}),
    controller: {
      ready: Boolean(state.pods[CONTROLLER_KEY]?.ready),
      xds: `${state.layout.controlPlane.ip}:${COMPONENT_PORTS.xds}`,
      adminSocket: paths.controllerSocket,
    },
    nodes: state.layout.nodes.map((n) => ({
      name: n.name,
      ip: n.ip,
      podCidr: n.podCidr,
      ztunnel: ztunnelStatus(state, n.name, paths.ztunnelSocket(n.name)),
    })),
    pods: [],
    services: [],
    errors: [],
    warnings: [],
  };
  const obs = state.extra?.observability as ObservabilityStatus | undefined;
  if (obs)
    status.observability = {
      prometheus: { ...obs.prometheus, ready: Boolean(state.pods[PROMETHEUS_KEY]?.ready) },
      jaeger: { ...obs.jaeger, ready: Boolean(state.pods[JAEGER_KEY]?.ready) },
    };
  let workloads: MeshWorkload[] | undefined;
  try {
    const model = await adminJson<{
      workloads: MeshWorkload[];
      services: MeshService[];
      translatedAt: string;
    }>(paths.controllerSocket, "/debug/model", "the controller");
    workloads = model.workloads;
    status.controller.translatedAt = model.translatedAt;
    status.services = model.services.map((s) => ({
      key: s.key,
      hostname: s.hostname,
      vips: s.vips,
      ports: s.ports.map((p) => `${p.port}${p.targetPort ? `->${p.targetPort}` : ""}`),
    }));
    const errs = await adminJson<{ errors: ObjectProblem[]; warnings: ObjectProblem[] }>(
      paths.controllerSocket,
      "/debug/errors",
      "the controller",
    );
    status.errors = errs.errors;
    status.warnings = errs.warnings;
    const objects = await adminJson<{ kind: string; namespace: string; name: string; status: unknown }[]>(
      paths.controllerSocket,
      "/debug/status",
      "the controller",
    );
    status.conditions = objects.map((o) => ({
      object: `${o.kind} ${o.namespace}/${o.name}`,
      conditions: conditionsIn(o.status),
    }));
  } catch (e) {
    status.controller.unreachable = (e as Error).message;
  }
  const byKey = new Map((workloads ?? []).map((w) => [`${w.namespace}/${w.name}`, w]));
  for (const [key, rec] of Object.entries(state.pods).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (isComponentKey(key)) continue;
    const [namespace = "", name = ""] = key.split("/", 2);
    const w = byKey.get(key);
    status.pods.push({
      key,
      namespace,
      name,
      node: rec.node,
      ip: rec.ip,
      ready: Boolean(rec.ready),
      restarts: restartsOf(state, key),
      ...(workloads ? { enrolled: w?.tunnel === "hbone" } : {}),
      ...(w ? { identity: `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}` } : {}),
    });
  }
  const failures = (state.extra?.podFailures ?? {}) as Record<string, string>;
  for (const [key, message] of Object.entries(failures)) {
    const p = status.pods.find((x) => x.key === key);
    if (p) p.failed = message;
    else {
      const [namespace = "", name = ""] = key.split("/", 2);
      status.pods.push({
        key,
        namespace,
        name,
        node: "",
        ip: "",
        ready: false,
        restarts: 0,
        failed: message,
      });
    }
  }
  status.pods.sort((a, b) => (a.key < b.key ? -1 : 1));
  return status;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

export function renderStatus(s: MeshStatus): string {
  const out: string[] = [];
  out.push(
    `mesh ${s.meshId}${s.dir ? ` from ${s.dir}` : ""} (up since ${s.createdAt}; supervisor ${s.supervisor.running ? `pid ${s.supervisor.pid}` : "not running"})`,
  );
  out.push(
    `controller: ${s.controller.ready ? "ready" : "not ready"}, xDS ${s.controller.xds}${s.controller.unreachable ? ` (unreachable: ${s.controller.unreachable})` : ""}`,
  );
  if (s.observability) {
    const o = s.observability;
    const ready = (r: boolean) => (r ? "" : " (not ready)");
    out.push(
      `prometheus: ${o.prometheus.url}${ready(o.prometheus.ready)} (scrapes every ${o.prometheus.scrapeIntervalSeconds}s)`,
      `jaeger: ${o.jaeger.url}${ready(o.jaeger.ready)} (OTLP from the waypoints: ${o.jaeger.otlpEndpoint})`,
    );
  }
  if (s.dashboard) out.push(`dashboard: ${s.dashboard} (service graph, workloads, config health)`);
  out.push("");
  out.push(
    table([
      ["NODE", "IP", "PODS", "ZTUNNEL"],
      ...s.nodes.map((n) => [
        n.name,
        n.ip,
        n.podCidr,
        `${n.ztunnel.ready ? "ready" : "not ready"}${n.ztunnel.restarts ? ` (${n.ztunnel.restarts} restarts)` : ""}${
          n.ztunnel.draining?.length
            ? `; draining: ${n.ztunnel.draining.map((d) => `${d.pod.slice(d.pod.indexOf("/") + 1)}${d.pid ? ` pid ${d.pid}` : ""} until ${d.deadline.slice(11, 19)}`).join(", ")}`
            : ""
        }`,
      ]),
    ]),
  );
  out.push("");
  if (s.pods.length === 0) out.push("no pods");
  else {
    out.push(
      table([
        ["POD", "NODE", "IP", "READY", "MESH", "IDENTITY"],
        ...s.pods.map((p) => [
          p.key,
          p.node,
          p.ip,
          p.failed ? "failed" : `${p.ready ? "yes" : "no"}${p.restarts ? ` (${p.restarts} restarts)` : ""}`,
          p.enrolled === undefined ? "?" : p.enrolled ? "mTLS" : "plain",
          p.identity ?? "",
        ]),
      ]),
    );
  }
  if (s.services.length > 0) {
    out.push("");
    out.push(
      table([
        ["SERVICE", "VIP", "PORTS"],
        ...s.services.map((v) => [v.hostname, v.vips.join(",") || "(headless)", v.ports.join(",")]),
      ]),
    );
  }
  const failed = s.pods.filter((p) => p.failed);
  if (failed.length > 0) {
    out.push("");
    for (const p of failed) out.push(`pod ${p.key} failed: ${p.failed}`);
  }
  if (s.conditions && s.conditions.length > 0) {
    out.push("", "OBJECT  CONDITIONS");
    for (const c of s.conditions) out.push(`${c.object}  ${c.conditions.join(", ")}`);
  }
  if (s.errors.length > 0 || s.warnings.length > 0) {
    out.push("");
    for (const e of s.errors) out.push(`error: ${e.message}`);
    for (const e of s.warnings) out.push(`warning: ${e.message}`);
  }
  return out.join("\n");
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: "boolean" },
      "mesh-id": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(STATUS_HELP);
    return 0;
  }
  const meshId = resolveMeshId(values["mesh-id"]);
  const s = await collectStatus(meshId);
  if (!s) {
    if (values.json) console.log(JSON.stringify({ meshId, up: false }));
    else console.error(`no local mesh '${meshId}' is up (start one with 'ambit up DIR')`);
    return 1;
  }
  console.log(values.json ? JSON.stringify({ up: true, ...s }, null, 2) : renderStatus(s));
  return 0;
}

/** `Type=Status (Reason)` of every condition in a status object (route parents included). */
function conditionsIn(status: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.type === "string" && typeof o.status === "string") {
        out.push(`${o.type}=${o.status}${typeof o.reason === "string" ? ` (${o.reason})` : ""}`);
        return;
      }
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(status);
  return out;
}

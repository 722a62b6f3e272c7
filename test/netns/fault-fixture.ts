// The fault tests' mesh and traffic, built on mesh-fixture.ts: a two-node
// `ambit up` (enrolled namespace `mesh`, STRICT, an echo server on node-2 and
// clients of several identities on node-1; an unenrolled `plain/outsider`),
// a traffic generator run inside a pod (long-lived connections pinged at a
// fixed interval plus new connections at a constant rate, each result a JSON
// line), and the ways in: component pids, metrics, logs, status.
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Test } from "tap";
import { Traffic, type TrafficOptions } from "./fault-traffic.js";
import { ambit, type CliResult, testMeshDirs } from "./mesh-fixture.js";

const ECHO = `require("net").createServer((s) => { s.on("error", () => {}); s.on("data", (d) => s.write("echo:" + d)); }).listen(8080)`;

function serviceAccount(ns: string, name: string): string {
  return `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${name}, namespace: ${ns}}\n---\n`;
}

function idlePod(ns: string, name: string, node: string): string {
  return `${serviceAccount(ns, name)}apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  nodeName: ${node}
  serviceAccountName: ${name}
  containers:
    - {name: idle, image: ignored, command: [sleep, infinity]}
---
`;
}

export interface FaultMeshOptions {
  /** Client pods in `mesh` on node-1, each with its own service account (default: [client]). */
  clients?: string[];
  /** Extra YAML files (name → text) written before `ambit up`. */
  files?: Record<string, string>;
  /** Environment of `ambit up` (passed on to the components, e.g. AMBIT_CERT_TTL). */
  env?: Record<string, string>;
}

export function writeFaultFixture(dir: string, opts: FaultMeshOptions = {}): void {
  const clients = opts.clients ?? ["client"];
  fs.writeFileSync(
    path.join(dir, "00-namespaces.yaml"),
    `apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {ambit.dev/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: strict, namespace: mesh}
spec: {mtls: {mode: STRICT}}
`,
  );
  fs.writeFileSync(
    path.join(dir, "mesh.yaml"),
    `${serviceAccount("mesh", "server")}apiVersion: v1
kind: Pod
metadata: {name: server, namespace: mesh, labels: {app: server}}
spec:
  nodeName: node-2
  serviceAccountName: server
  containers:
    - name: echo
      image: ignored
      command: [node, -e, ${JSON.stringify(ECHO)}]
      ports: [{name: tcp, containerPort: 8080}]
      readinessProbe: {tcpSocket: {port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: mesh}
spec:
  selector: {app: server}
  ports: [{name: tcp, port: 80, targetPort: tcp}]
---
${clients.map((c) => idlePod("mesh", c, "node-1")).join("")}`,
  );
  fs.writeFileSync(path.join(dir, "plain.yaml"), idlePod("plain", "outsider", "node-1"));
  for (const [name, text] of Object.entries(opts.files ?? {})) fs.writeFileSync(path.join(dir, name), text);
}

export interface PodStatus {
  key: string;
  ip: string;
  node: string;
  ready: boolean;
  enrolled?: boolean;
}

/** A running fault mesh; everything is torn down in the test's teardown. */
export interface FaultMesh {
  runDir: string;
  dir: string;
  meshId: string;
  cli(args: string[], timeoutMs?: number): Promise<CliResult>;
  pod(key: string): Promise<PodStatus>;
  /** Pid of a component's process: `controller`, `ztunnel-node-1`, or a pod key `ns/name/container`. */
  pid(component: string): number | undefined;
  /** Resolves once the component runs as a new process (other than `oldPid`) and is ready again. */
  restarted(component: string, oldPid: number, timeoutMs?: number): Promise<number>;
  /**
   * Resolves once the controller (a new process after a restart) holds a
   * stream from every node's ztunnel with every type in sync.
   */
  resynced(nodes: string[], timeoutMs?: number): Promise<void>;
  /** The ztunnel's Prometheus text. */
  ztunnelMetrics(node: string): Promise<string>;
  /** A component's log (`controller`, `ztunnel-node-1`, `ns/pod/container`). */
  log(component: string): string;
  /** Starts a traffic generator inside a pod. */
  traffic(t: Test, from: string, opts: TrafficOptions): Promise<Traffic>;
}

/** Sum of a metric's samples whose labels include every given label (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

export async function startFaultMesh(t: Test, opts: FaultMeshOptions = {}): Promise<FaultMesh> {
  const { runDir, dir, meshId } = testMeshDirs(t, "fault");
  const { readState, processStartTime } = await import("../../local/state.js");
  const { adminGet, logSources } = await import("../../local/supervisor-logs.js");
  const { meshPaths } = await import("../../local/supervisor-plan.js");
  // --mesh-id right after the subcommand (before any `--` of `exec`).
  const cli = (args: string[], timeoutMs?: number) =>
    ambit(runDir, [args[0] ?? "", "--mesh-id", meshId, ...args.slice(1)], timeoutMs);
  writeFaultFixture(dir, opts);
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  let up: CliResult;
  try {
    up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  if (up.code !== 0) throw new Error(`ambit up failed (${up.code}): ${up.stderr.slice(-2000)}`);

  const processName = (component: string) =>
    component === "controller"
      ? "ambit-system/controller/controller"
      : component.startsWith("ztunnel-")
        ? `ambit-system/${component}/ztunnel`
        : component;
  const podKey = (component: string) =>
    component === "controller"
      ? "ambit-system/controller"
      : component.startsWith("ztunnel-")
        ? `ambit-system/${component}`
        : component.split("/").slice(0, 2).join("/");
  const pid = (component: string) =>
    readState(meshId)?.processes.find((p) => p.name === processName(component))?.pid;
  const paths = meshPaths(meshId);

  const mesh: FaultMesh = {
    runDir,
    dir,
    meshId,
    cli,
    async pod(key) {
      const r = await cli(["status", "--json"]);
      const p = (JSON.parse(r.stdout) as { pods: PodStatus[] }).pods.find((x) => x.key === key);
      if (!p) throw new Error(`no pod ${key} in status`);
      return p;
    },
    pid,
    async restarted(component, oldPid, timeoutMs = 60_000) {
      // Woken by the state file's rewrites (the supervisor records pids and readiness there).
      const stateDir = path.join(runDir, meshId);
      const watcher = fs.watch(stateDir);
      const timer = setInterval(() => watcher.emit("change"), 1000);
      const deadline = Date.now() + timeoutMs;
      try {
        for (;;) {
          const p = pid(component);
          if (p && p !== oldPid && processStartTime(p) && readState(meshId)?.pods[podKey(component)]?.ready)
            return p;
          if (Date.now() > deadline) throw new Error(`${component} not back within ${timeoutMs} ms`);
          await once(watcher, "change");
        }
      } finally {
        clearInterval(timer);
        watcher.close();
      }
    },
    async resynced(nodes, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await adminGet(paths.controllerSocket, "/debug/proxies").catch(() => undefined);
        if (r?.status === 200) {
          const body = JSON.parse(r.body) as unknown;
          const list = (Array.isArray(body) ? body : ((body as { proxies?: unknown[] }).proxies ?? [])) as {
            nodeName?: string;
            types: { inSync: boolean }[];
          }[];
          const synced = (node: string) =>
            list.some((p) => p.nodeName === node && p.types.length >= 2 && p.types.every((x) => x.inSync));
          if (nodes.every(synced)) return;
        }
        if (Date.now() > deadline)
          throw new Error(`ztunnels ${nodes.join(", ")} not in sync within ${timeoutMs} ms`);
        // A condition polled on the controller's admin socket (no event crosses the process boundary).
        await new Promise((res) => setTimeout(res, 250));
      }
    },
    async ztunnelMetrics(node) {
      return (await adminGet(paths.ztunnelSocket(node), "/metrics")).body;
    },
    log(component) {
      return logSources(paths, component)
        .map((s) => {
          try {
            return fs.readFileSync(s.file, "utf8");
          } catch {
            return "";
          }
        })
        .join("");
    },
    traffic: (t, from, opts) => Traffic.start(t, runDir, meshId, from, opts),
  };
  return mesh;
}

/**
 * Counts packets on the bridge between the nodes that match a tcpdump filter
 * (e.g. application ports: anything there is plain text that left a node).
 */
export async function captureFabric(
  t: Test,
  meshId: string,
  filter: string,
): Promise<{ stop(): Promise<string[]> }> {
  const proc = spawn(
    "ip",
    [
      "netns",
      "exec",
      `ambit-${meshId}-fabric`,
      "tcpdump",
      "-i",
      "br0",
      "-n",
      "-l",
      "--immediate-mode",
      filter,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  t.teardown(() => {
    proc.kill("SIGKILL");
  });
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on("line", (l) => lines.push(l));
  let err = "";
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes("listening on")) resolve();
    });
    proc.on("exit", () => reject(new Error(`tcpdump exited: ${err}`)));
  });
  return {
    async stop() {
      const exited = once(proc, "exit");
      proc.kill("SIGINT");
      await exited;
      return lines;
    },
  };
}

export {
  GENERATOR,
  type ShortSummary,
  Traffic,
  type TrafficEvent,
  type TrafficOptions,
} from "./fault-traffic.js";

// The fault tests' mesh and traffic, built on mesh-fixture.ts: a two-node
// `ambit up` (enrolled namespace `mesh`, STRICT, an echo server on node-2 and
// clients of several identities on node-1; an unenrolled `plain/outsider`),
// a traffic generator run inside a pod (long-lived connections pinged at a
// fixed interval plus new connections at a constant rate, each result a JSON
// line), and the ways in: component pids, metrics, logs, status.
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";
import { ambit, type CliResult } from "./mesh-fixture.js";
import { testMeshId } from "./netns-fixture.js";

const cliMain = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

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
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-fault-"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-fault-yaml-"));
  const meshId = testMeshId();
  process.env.AMBIT_RUN_DIR = runDir; // this process reads the state file too
  const { destroyMeshNetwork } = await import("../../local/network.js");
  const { readState, processStartTime } = await import("../../local/state.js");
  const { adminGet, logSources } = await import("../../local/supervisor-logs.js");
  const { meshPaths } = await import("../../local/supervisor-plan.js");
  // --mesh-id right after the subcommand (before any `--` of `exec`).
  const cli = (args: string[], timeoutMs?: number) =>
    ambit(runDir, [args[0] ?? "", "--mesh-id", meshId, ...args.slice(1)], timeoutMs);
  t.teardown(async () => {
    // AMBIT_FAULT_KEEP=DIR keeps the components' logs for a post-mortem.
    const keep = process.env.AMBIT_FAULT_KEEP;
    if (keep) fs.cpSync(path.join(runDir, meshId, "logs"), path.join(keep, meshId), { recursive: true });
    await ambit(runDir, ["down", "--mesh-id", meshId], 60_000);
    await destroyMeshNetwork(meshId, { graceMs: 500 }).catch(() => undefined);
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
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

// ---- traffic --------------------------------------------------------------

/**
 * Runs inside a pod. Long-lived connections send `P<9 digits>` every pingMs
 * and count the echoes; new connections are opened at `rate` per second,
 * each sending `S<n>` and waiting for its echo. One JSON line per event;
 * ends (and says "done") when stdin closes.
 */
export const GENERATOR = `
const net = require("net");
const cfg = JSON.parse(process.argv[1]);
const out = (o) => process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + "\\n");
let stopping = false;
const longs = [];
function openLong(i) {
  const c = { i, s: net.connect({ host: cfg.host, port: cfg.port }), sent: 0, echoed: 0, buf: "", lastEcho: 0, open: false };
  c.s.setNoDelay(true);
  c.s.on("connect", () => { c.open = true; c.lastEcho = Date.now(); out({ ev: "long-open", i }); });
  c.s.on("data", (d) => {
    c.buf += d;
    let m, end = 0;
    if (cfg.http) {
      // One answer per request on a keep-alive connection; only 200s count as echoes.
      const re = /HTTP\\/1\\.1 (\\d{3})/g;
      while ((m = re.exec(c.buf))) { if (m[1] === "200") c.echoed++; end = re.lastIndex; }
      if (end) { c.buf = c.buf.slice(end); c.lastEcho = Date.now(); }
      return;
    }
    const re = /P(\\d{9})/g;
    while ((m = re.exec(c.buf))) { c.echoed = Math.max(c.echoed, Number(m[1])); end = re.lastIndex; }
    if (end) { c.buf = c.buf.slice(end); c.lastEcho = Date.now(); }
  });
  const closed = (error) => {
    if (!c.open && !error) return;
    const was = c.open; c.open = false;
    if (!stopping && !c.reported) { c.reported = true; out({ ev: "long-drop", i, error: error || "closed", sent: c.sent, echoed: c.echoed, wasOpen: was }); }
  };
  c.s.on("error", (e) => closed(e.code || e.message));
  c.s.on("close", () => closed());
  longs.push(c);
}
for (let i = 0; i < cfg.long; i++) openLong(i);
const ping = setInterval(() => {
  for (const c of longs) if (c.open) {
    c.sent++;
    c.s.write(cfg.http ? "GET /long HTTP/1.1\\r\\nHost: " + cfg.hostHeader + "\\r\\n\\r\\n" : "P" + String(c.sent).padStart(9, "0"));
  }
}, cfg.pingMs);
let n = 0, inflight = 0;
const short = cfg.rate > 0 && setInterval(() => {
  const id = ++n, t0 = Date.now();
  inflight++;
  const s = net.connect({ host: cfg.host, port: cfg.port });
  let got = "", done = false;
  const end = (ok, error) => {
    if (done) return; done = true; inflight--;
    clearTimeout(timer); s.destroy();
    out({ ev: "short", n: id, ok, ...(error ? { error } : {}), ms: Date.now() - t0 });
  };
  const timer = setTimeout(() => end(false, "timeout"), cfg.timeoutMs);
  if (cfg.http) {
    s.on("connect", () => s.write("GET /short/" + id + " HTTP/1.1\\r\\nHost: " + cfg.hostHeader + "\\r\\nConnection: close\\r\\n\\r\\n"));
    s.on("data", (d) => {
      got += d;
      const m = /^HTTP\\/1\\.1 (\\d{3})/.exec(got);
      if (m) end(m[1] === "200", m[1] === "200" ? undefined : "http " + m[1]);
    });
    s.on("error", (e) => end(false, e.code || e.message));
    s.on("close", () => end(false, got ? "closed-early" : "closed"));
    return;
  }
  s.on("connect", () => s.write("S" + id + ";"));
  s.on("data", (d) => { got += d; if (got.includes("echo:S" + id + ";")) end(true); });
  s.on("error", (e) => end(false, e.code || e.message));
  s.on("close", () => end(false, got ? "closed-early" : "closed"));
}, 1000 / cfg.rate);
const tick = setInterval(() => {
  const now = Date.now();
  let stall = 0;
  for (const c of longs) if (c.open && c.sent > c.echoed) stall = Math.max(stall, now - c.lastEcho);
  out({ ev: "tick", open: longs.filter((c) => c.open).length, stallMs: stall });
}, 500);
process.stdin.resume();
process.stdin.on("end", () => {
  stopping = true;
  if (short) clearInterval(short); clearInterval(tick);
  const wait = setInterval(() => {
    if (inflight > 0) return;
    clearInterval(wait); clearInterval(ping);
    out({ ev: "done", longs: longs.map((c) => ({ i: c.i, open: c.open, sent: c.sent, echoed: c.echoed })) });
    for (const c of longs) c.s.destroy();
    process.exit(0);
  }, 20);
});
`;

export interface TrafficOptions {
  host: string;
  port: number;
  /** Long-lived connections (default 10). */
  long?: number;
  /** Ping interval of each long-lived connection (default 200 ms). */
  pingMs?: number;
  /** New connections per second (default 10). */
  rate?: number;
  /** A new connection that has not echoed within this fails (default 3000 ms). */
  timeoutMs?: number;
  /** HTTP/1.1 instead of echo: long-lived connections send keep-alive GETs, new ones one GET each; 200 is success. */
  http?: boolean;
  /** Host header in HTTP mode (default: host). */
  hostHeader?: string;
}

export interface TrafficEvent {
  t: number;
  ev: "long-open" | "long-drop" | "short" | "tick" | "done";
  i?: number;
  n?: number;
  ok?: boolean;
  error?: string;
  ms?: number;
  open?: number;
  stallMs?: number;
  longs?: { i: number; open: boolean; sent: number; echoed: number }[];
}

export interface ShortSummary {
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

/** The test side of one generator: every event kept, with queries over time windows. */
export class Traffic extends EventEmitter {
  readonly events: TrafficEvent[] = [];
  private exited: Promise<unknown>;

  private constructor(
    private readonly proc: ChildProcess,
    readonly opts: Required<TrafficOptions>,
  ) {
    super();
    this.exited = once(proc, "exit");
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      let e: TrafficEvent;
      try {
        e = JSON.parse(line) as TrafficEvent;
      } catch {
        return;
      }
      this.events.push(e);
      this.emit("event", e);
    });
  }

  static async start(
    t: Test,
    runDir: string,
    meshId: string,
    from: string,
    o: TrafficOptions,
  ): Promise<Traffic> {
    const opts = { long: 10, pingMs: 200, rate: 10, timeoutMs: 3000, http: false, hostHeader: o.host, ...o };
    const proc = spawn(
      process.execPath,
      [cliMain, "exec", "--mesh-id", meshId, from, "--", "node", "-e", GENERATOR, JSON.stringify(opts)],
      {
        env: { ...process.env, AMBIT_RUN_DIR: runDir, NODE_OPTIONS: "" },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const tr = new Traffic(proc, opts);
    t.teardown(() => tr.stop().catch(() => undefined));
    // Ready: every long-lived connection open and a few new connections through.
    await tr.until(
      () => {
        const s = tr.shortsSince(0);
        // Every long-lived connection opened or refused (under a fault some never open).
        const settled = new Set(
          tr.events.filter((e) => e.ev === "long-open" || e.ev === "long-drop").map((e) => e.i),
        );
        const longsOpen = settled.size >= opts.long;
        return longsOpen && (opts.rate === 0 || s.ok + s.failed >= 3);
      },
      30_000,
      `traffic from ${from} to start`,
    );
    return tr;
  }

  /** Resolves when pred() holds (checked on every event), rejects after timeoutMs. */
  until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const on = () => {
        if (!pred()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(this.shortsSince(0))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.off("event", on);
      };
      this.on("event", on);
    });
  }

  /** Results of new connections that ended in [from, to). */
  shortsSince(from: number, to = Number.POSITIVE_INFINITY): ShortSummary {
    const s: ShortSummary = { ok: 0, failed: 0, errors: {} };
    for (const e of this.events) {
      if (e.ev !== "short" || e.t < from || e.t >= to) continue;
      if (e.ok) s.ok++;
      else {
        s.failed++;
        s.errors[e.error ?? "?"] = (s.errors[e.error ?? "?"] ?? 0) + 1;
      }
    }
    return s;
  }

  /** The last `k` new connections all ended with ok === want. */
  lastShorts(k: number, want: boolean): boolean {
    const shorts = this.events.filter((e) => e.ev === "short");
    return shorts.length >= k && shorts.slice(-k).every((e) => e.ok === want);
  }

  drops(): TrafficEvent[] {
    return this.events.filter((e) => e.ev === "long-drop");
  }

  /** Longest time a long-lived connection waited for an echo in [from, to). */
  maxStallMs(from: number, to = Number.POSITIVE_INFINITY): number {
    let m = 0;
    for (const e of this.events)
      if (e.ev === "tick" && e.t >= from && e.t < to) m = Math.max(m, e.stallMs ?? 0);
    return m;
  }

  private stopped: Promise<TrafficEvent | undefined> | undefined;

  /** Ends the generator; resolves with its final report (every long-lived connection's counts). */
  stop(): Promise<TrafficEvent | undefined> {
    this.stopped ??= (async () => {
      this.proc.stdin?.end();
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
      return this.events.find((e) => e.ev === "done");
    })();
    return this.stopped;
  }
}

// Runs a pod's containers as processes inside the pod's network namespace:
// the one way of running a pod in ambit (`ambit up`, and the Kubernetes test
// node host). The image is ignored: `command` + `args` are the argv (with no
// `command`, `args` alone are), `env` is the environment, `workingDir` the cwd.
//
// Kubernetes semantics kept: init containers run one by one to success first;
// restartPolicy Always/OnFailure/Never with exponential back-off (reset after
// a container ran long enough); readiness probes (exec, httpGet, tcpSocket;
// pod-probes.ts) with initialDelay/period/timeout/success/failure thresholds,
// run from inside the namespace against the pod IP. Where the pod's network namespace comes
// from is the caller's business (`ambit up`: local/mesh-network.ts; the test
// node host: CNI plugins); how a container's image and mounts become a
// process is pluggable too (PodRunnerOptions.image, .sandbox), so both share
// this one runner. One deviation: until a container's first
// probe success, probes repeat every `probeIntervalUntilReadyMs` (default
// 500 ms) rather than every periodSeconds, so a local mesh starts in seconds.
//
// Events: "start" {container, pid, restarts}, "exit" {container, code,
// signal, restarting, delayMs}, "ready", "unready", "completed" (every
// container ended and none will restart), "failed" {container, reason}.
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import type { Container, EnvVar } from "../controller/provider/objects.js";
import { ObjectError } from "../core/errors/errors.js";
import { spawnInNetns } from "./netns-process.js";
import { ProbeLoop, podRef } from "./pod-probes.js";

export type RestartPolicy = "Always" | "OnFailure" | "Never";

export interface PodRunSpec {
  /** "namespace/name". */
  key: string;
  netnsPath: string;
  ip: string;
  containers: Container[];
  initContainers?: Container[];
  restartPolicy?: RestartPolicy;
  /** Values for `env[].valueFrom.fieldRef.fieldPath` (metadata.name, status.podIP... are filled in). */
  fieldRefs?: Record<string, string>;
  /** Resolves env entries with secretKeyRef/configMapKeyRef; undefined leaves them out. */
  resolveEnv?: (v: EnvVar) => string | undefined;
  /** Container stdout+stderr are appended to `<logDir>/<container>.log`; otherwise discarded. */
  logDir?: string;
  /** Seconds SIGTERM is given before SIGKILL at close (spec.terminationGracePeriodSeconds; default 30). */
  terminationGracePeriodSeconds?: number;
}

/** An image's ENTRYPOINT and CMD, as a container runtime would read them from the image. */
export interface ImageEntrypoint {
  entrypoint: string[];
  cmd?: string[];
}

/** Maps a container's image to the local program that stands in for it (undefined: no entrypoint). */
export type ImageResolver = (image: string | undefined) => ImageEntrypoint | undefined;

/**
 * Wraps a container's argv before it is started inside the pod's network
 * namespace, e.g. in a mount namespace with the pod's volumes (the argv must
 * exec the original, so the pid stays the program's).
 */
export type ContainerSandbox = (container: Container, argv: string[]) => string[];

export interface PodRunnerOptions {
  /** Image entrypoints for containers without `command` (default: none; `args` alone are the argv). */
  image?: ImageResolver;
  /** Wraps every container's and exec probe's argv (default: run as is). */
  sandbox?: ContainerSandbox;
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
  probeIntervalUntilReadyMs?: number;
  /** Upper bound on the termination grace at close (default: no bound). */
  maxGraceMs?: number;
}

export interface ContainerStatus {
  name: string;
  state: "waiting" | "running" | "terminated";
  pid?: number;
  restarts: number;
  ready: boolean;
  exitCode?: number | null;
  signal?: string | null;
}

/**
 * argv of a container (pure). As in Kubernetes: `command` replaces the
 * image's ENTRYPOINT, and `args` its CMD; without an image entrypoint,
 * `args` alone are the argv.
 */
export function containerArgv(key: string, c: Container, field: string, image?: ImageEntrypoint): string[] {
  const argv = c.command
    ? [...c.command, ...(c.args ?? [])]
    : [...(image?.entrypoint ?? []), ...(c.args ?? image?.cmd ?? [])];
  if (argv.length === 0) {
    throw new ObjectError(
      "INVALID_FIELD",
      podRef(key),
      `${field}.command`,
      "no command or args: images are not run, give the program to start",
    );
  }
  return argv;
}

/** Environment of a container (pure): PATH and HOSTNAME, then the container's env in order. */
export function containerEnv(spec: PodRunSpec, c: Container): NodeJS.ProcessEnv {
  const { name, namespace } = podRef(spec.key);
  const refs: Record<string, string> = {
    "metadata.name": name,
    "metadata.namespace": namespace ?? "default",
    "status.podIP": spec.ip,
    ...spec.fieldRefs,
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    HOSTNAME: name,
  };
  for (const v of c.env ?? []) {
    let value: string | undefined;
    if (v.value !== undefined)
      value = v.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
    else if (v.valueFrom?.fieldRef) value = refs[v.valueFrom.fieldRef.fieldPath];
    else value = spec.resolveEnv?.(v);
    if (value !== undefined) env[v.name] = value;
  }
  return env;
}

interface ContainerRun {
  spec: Container;
  index: number;
  argv: string[];
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
  startedAt: number;
  restarts: number;
  backoffMs: number;
  state: ContainerStatus["state"];
  exitCode?: number | null;
  signal?: string | null;
  ready: boolean;
  probe?: ProbeLoop;
  restartTimer?: NodeJS.Timeout;
}

export class PodRunner extends EventEmitter {
  private readonly runs: ContainerRun[];
  private readonly policy: RestartPolicy;
  private closing = false;
  private podReady = false;
  private started = false;
  private readonly backoff: { initialMs: number; maxMs: number; resetAfterMs: number };

  constructor(
    readonly spec: PodRunSpec,
    private readonly opts: PodRunnerOptions = {},
  ) {
    super();
    this.policy = spec.restartPolicy ?? "Always";
    this.backoff = { initialMs: 1000, maxMs: 60_000, resetAfterMs: 60_000, ...opts.backoff };
    if (spec.containers.length === 0)
      throw new ObjectError("INVALID_FIELD", podRef(spec.key), "spec.containers", "no containers");
    this.runs = spec.containers.map((c, i) => ({
      spec: c,
      index: i,
      argv: containerArgv(spec.key, c, `spec.containers[${i}]`, opts.image?.(c.image)),
      env: containerEnv(spec, c),
      startedAt: 0,
      restarts: 0,
      backoffMs: this.backoff.initialMs,
      state: "waiting",
      ready: false,
    }));
    for (const [i, c] of (spec.initContainers ?? []).entries())
      containerArgv(spec.key, c, `spec.initContainers[${i}]`, opts.image?.(c.image));
  }

  get ready(): boolean {
    return this.podReady;
  }

  status(): ContainerStatus[] {
    return this.runs.map((r) => ({
      name: r.spec.name,
      state: r.state,
      ...(r.child?.pid !== undefined && r.state === "running" ? { pid: r.child.pid } : {}),
      restarts: r.restarts,
      ready: r.ready,
      ...(r.state === "terminated" ? { exitCode: r.exitCode ?? null, signal: r.signal ?? null } : {}),
    }));
  }

  /** Pids of the running containers (for the state file). */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.runs) if (r.state === "running" && r.child?.pid) out[r.spec.name] = r.child.pid;
    return out;
  }

  /** Runs the init containers, then starts every container. Errors come as "failed" events. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.runInit(0).then(
      (ok) => {
        if (ok && !this.closing) for (const r of this.runs) this.launch(r);
      },
      (err: Error) => this.emit("failed", { container: undefined, reason: err.message }),
    );
  }

  /** SIGTERM every container's process group, SIGKILL after the grace period; resolves when all exited. */
  async close(): Promise<void> {
    this.closing = true;
    const graceMs = Math.min(
      (this.spec.terminationGracePeriodSeconds ?? 30) * 1000,
      this.opts.maxGraceMs ?? Number.POSITIVE_INFINITY,
    );
    await Promise.all(
      this.runs.map(async (r) => {
        if (r.restartTimer) clearTimeout(r.restartTimer);
        r.probe?.stop();
        const child = r.child;
        if (child && r.state === "running") await terminate(child, graceMs);
      }),
    );
    this.setPodReady(false);
  }

  // ---------- internals ----------

  private async runInit(i: number): Promise<boolean> {
    const init = this.spec.initContainers ?? [];
    let backoff = this.backoff.initialMs;
    while (i < init.length && !this.closing) {
      const c = init[i]!;
      const code = await new Promise<number | null>((resolve) => {
        const child = this.spawnLogged(
          c,
          containerArgv(this.spec.key, c, `spec.initContainers[${i}]`, this.opts.image?.(c.image)),
          containerEnv(this.spec, c),
        );
        child.on("error", () => resolve(-1));
        child.on("exit", (code) => resolve(code));
      });
      if (code === 0) {
        i++;
        backoff = this.backoff.initialMs;
        continue;
      }
      if (this.policy === "Never") {
        this.emit("failed", { container: c.name, reason: `init container exited with ${code}` });
        return false;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, this.backoff.maxMs);
    }
    return !this.closing;
  }

  /** Spawns with stdout+stderr appended to the container's log file (the child keeps its own copy of the fd). */
  private spawnLogged(c: Container, argv: string[], env: NodeJS.ProcessEnv): ChildProcess {
    let fd: number | undefined;
    if (this.spec.logDir) {
      fs.mkdirSync(this.spec.logDir, { recursive: true });
      fd = fs.openSync(path.join(this.spec.logDir, `${c.name}.log`), "a");
    }
    try {
      return spawnInNetns(this.spec.netnsPath, this.opts.sandbox ? this.opts.sandbox(c, argv) : argv, {
        env,
        ...(c.workingDir ? { cwd: c.workingDir } : {}),
        stdio: ["ignore", fd ?? "ignore", fd ?? "ignore"],
        detached: true, // own process group: close() signals the container's children too
      });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  private launch(r: ContainerRun): void {
    if (this.closing) return;
    r.restartTimer = undefined;
    const child = this.spawnLogged(r.spec, r.argv, r.env);
    r.child = child;
    r.state = "running";
    r.startedAt = Date.now();
    let exited = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      this.onExit(r, code, signal);
    };
    child.on("error", (err) => {
      this.emit("failed", { container: r.spec.name, reason: err.message });
      onExit(-1, null);
    });
    child.on("exit", onExit);
    this.emit("start", { container: r.spec.name, pid: child.pid, restarts: r.restarts });
    if (r.spec.readinessProbe) {
      r.probe = new ProbeLoop(
        r.spec.readinessProbe,
        this.spec,
        { spec: r.spec, env: r.env, ...(this.opts.sandbox ? { sandbox: this.opts.sandbox } : {}) },
        this.opts.probeIntervalUntilReadyMs ?? 500,
        (ok) => {
          if (r.ready !== ok) {
            r.ready = ok;
            this.recompute();
          }
        },
      );
      r.probe.start();
    } else {
      r.ready = true;
      this.recompute();
    }
  }

  private onExit(r: ContainerRun, code: number | null, signal: NodeJS.Signals | null): void {
    r.probe?.stop();
    r.probe = undefined;
    r.state = "terminated";
    r.exitCode = code;
    r.signal = signal;
    r.ready = false;
    this.recompute();
    if (this.closing) return;
    const restart = this.policy === "Always" || (this.policy === "OnFailure" && code !== 0);
    if (Date.now() - r.startedAt >= this.backoff.resetAfterMs) r.backoffMs = this.backoff.initialMs;
    const delayMs = restart ? r.backoffMs : 0;
    this.emit("exit", { container: r.spec.name, code, signal, restarting: restart, delayMs });
    if (restart) {
      r.backoffMs = Math.min(r.backoffMs * 2, this.backoff.maxMs);
      r.restartTimer = setTimeout(() => {
        r.restarts++;
        this.launch(r);
      }, delayMs);
    } else if (this.runs.every((x) => x.state === "terminated" && !x.restartTimer)) {
      this.emit("completed", this.status());
    }
  }

  private recompute(): void {
    this.setPodReady(this.runs.every((r) => r.state === "running" && r.ready));
  }

  private setPodReady(ready: boolean): void {
    if (ready === this.podReady) return;
    this.podReady = ready;
    this.emit(ready ? "ready" : "unready");
  }
}

function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    const timer = setTimeout(() => kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    kill("SIGTERM");
  });
}

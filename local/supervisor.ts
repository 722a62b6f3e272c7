// The process that runs a local mesh (`ambit up`): reads the directory,
// builds the nodes, runs the controller in the control plane's namespace and
// one ztunnel per node (as the mesh's own "hostNetwork" pods, restarted when
// they die), then every Pod of the YAML in its own namespace on its node. It
// keeps the controller's facts file (pod IPs, nodes, readiness) and each
// ztunnel's pods file current, and follows the directory: new pods start,
// removed pods stop; labels and policies flow through the controller alone.
//
//   const sup = await MeshSupervisor.start({ dir, meshId: "local", nodes: 2 });
//   sup.on("progress", (line) => ...);
//   const report = await sup.whenSettled(120_000);   // every pod ready (or failed, or done)
//   await sup.close();                                 // `down`
import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { newNodeToken, writeTokenFile } from "../controller/ca/authn.js";
import { LocalProvider } from "../controller/provider/local/index.js";
import type { ClusterSnapshot, Container, Pod } from "../controller/provider/objects.js";
import type { ObjectError } from "../core/errors/errors.js";
import { logger } from "../core/telemetry/logger.js";
import { applySteps, nodeOf, planPodDns } from "./network.js";
import { observabilityPlan } from "./observability.js";
import { ensureObservabilityBinaries, type ObservabilityBinaries } from "./observability-binaries.js";
import { MeshObservability } from "./observability-mesh.js";
import type { PodRunnerOptions } from "./pod-runner.js";
import { LocalRuntime } from "./runtime.js";
import {
  type ComponentContext,
  componentEnv,
  controllerContainer,
  ztunnelContainer,
} from "./supervisor-components.js";
import { DashboardForward, dashboardForwardAddress } from "./supervisor-dashboard.js";
import { LocalDns } from "./supervisor-dns.js";
import {
  CONTROLLER_KEY,
  factsJson,
  isComponentKey,
  JAEGER_KEY,
  type MeshPaths,
  meshPaths,
  PROMETHEUS_KEY,
  placePods,
  planNodeNames,
  podsFileJson,
  type RunningPodFacts,
  SYSTEM_NAMESPACE,
  ztunnelKey,
} from "./supervisor-plan.js";
import { planPodLaunch } from "./supervisor-pod-launch.js";
import { ZtunnelUpgrader } from "./supervisor-upgrade.js";
import { writeFileAtomicSync } from "../core/files/write-atomic.js";

export interface SupervisorOptions {
  /** Directory of Kubernetes YAML (made absolute). */
  dir: string;
  meshId: string;
  /** Node count (node-1..node-N); nodes named by pods are added. */
  nodes: number;
  /** Remove a previous mesh of this id first. */
  replace?: boolean;
  /** The `ambit` entry point the components run as (default: this build's cli/main.js). */
  cliMain?: string;
  /** Run ztunnels (default: when this build has the ztunnel command). */
  ztunnel?: boolean;
  runner?: PodRunnerOptions;
  /** Extra environment for the components (AMBIT_LOG_LEVEL is passed on by default). */
  componentEnv?: Record<string, string>;
  /** `--observability`: also run Prometheus and Jaeger (local/observability.ts). */
  observability?: {
    scrapeIntervalSeconds: number;
    /** A Jaeger binary to use instead of the cached build. */
    jaegerBin?: string;
  };
}

export type PodPhase = "starting" | "ready" | "completed" | "failed";

export interface PodSummary {
  key: string;
  node: string;
  ip: string;
  phase: PodPhase;
  message?: string;
}

export interface SettledReport {
  /** Every pod and component is ready, done, or failed (nothing still starting). */
  settled: boolean;
  pods: PodSummary[];
  components: PodSummary[];
  errors: ObjectError[];
}

const log = logger("supervisor");

/** dist/cli/main.js of this build. */
export function defaultCliMain(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../cli/main.js");
}

function hasZtunnelCommand(cliMain: string): boolean {
  return (
    fs.existsSync(path.join(path.dirname(cliMain), "commands", "ztunnel.js")) &&
    fs.existsSync(path.join(path.dirname(cliMain), "..", "ztunnel", "app.js"))
  );
}

export class MeshSupervisor extends EventEmitter {
  readonly paths: MeshPaths;
  private readonly phases = new Map<string, { phase: PodPhase; message?: string }>();
  /** Pods of the YAML that could not be started, by key → the spec that failed (retried when it changes). */
  private readonly refused = new Map<string, string>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Reconciles queued or running: the mesh is not settled while the pods are still being created. */
  private busy = 0;
  private dns: LocalDns | undefined;
  private dashboard: DashboardForward | undefined;
  private readonly withZtunnel: boolean;
  private readonly hasWaypointCommand: boolean;
  private readonly cliMain: string;
  private observability: MeshObservability | undefined;
  private observabilityBinaries: ObservabilityBinaries | undefined;
  /** `ambit upgrade` (SIGUSR2): replaces the ztunnels without dropping connections. */
  private upgrader: ZtunnelUpgrader | undefined;
  private readonly onUpgradeSignal = () => void this.upgrader?.fromRequestFile(this.opts.meshId);
  /** Running waypoint pods → their Gateway (NS/NAME), for Prometheus' targets. */
  private readonly waypointPods = new Map<string, string>();

  private constructor(
    private readonly opts: SupervisorOptions,
    private readonly provider: LocalProvider,
    readonly runtime: LocalRuntime,
  ) {
    super();
    this.paths = meshPaths(opts.meshId);
    this.cliMain = opts.cliMain ?? defaultCliMain();
    this.withZtunnel = opts.ztunnel ?? hasZtunnelCommand(this.cliMain);
    this.hasWaypointCommand = fs.existsSync(path.join(path.dirname(this.cliMain), "commands", "waypoint.js"));
  }

  /** Reads the directory (rejects when it cannot), builds the mesh, starts the components and the pods. */
  static async start(opts: SupervisorOptions, onProgress?: (line: string) => void): Promise<MeshSupervisor> {
    const dir = path.resolve(opts.dir);
    const quiet = logger("supervisor.provider");
    quiet.level = "silent"; // its errors are reported by the supervisor, once
    const provider = new LocalProvider({ dir, logger: quiet });
    await provider.start();
    const snapshot = provider.snapshot();
    const nodes = planNodeNames(
      opts.nodes,
      snapshot.pods,
      snapshot.nodes.map((n) => n.metadata.name),
    );
    // Before any namespace exists: a missing Prometheus or Jaeger is installed (or refused) first.
    const binaries = opts.observability
      ? await ensureObservabilityBinaries(
          (l) => onProgress?.(l),
          opts.observability.jaegerBin ? { jaegerBin: opts.observability.jaegerBin } : {},
        ).catch(async (e: Error) => {
          await provider.close();
          throw e;
        })
      : undefined;
    onProgress?.(`creating ${nodes.length} nodes (${nodes.join(", ")})`);
    let runtime: LocalRuntime;
    try {
      runtime = await LocalRuntime.start({
        meshId: opts.meshId,
        nodes,
        dir,
        ...(opts.replace ? { replace: true } : {}),
        runner: { maxGraceMs: 3000, ...opts.runner },
      });
    } catch (e) {
      await provider.close();
      throw e;
    }
    const sup = new MeshSupervisor({ ...opts, dir }, provider, runtime);
    sup.observabilityBinaries = binaries;
    if (onProgress) sup.on("progress", onProgress);
    try {
      await sup.boot();
    } catch (e) {
      await sup.close().catch(() => undefined);
      throw e;
    }
    return sup;
  }

  /** Whether close() was called (the mesh is going or gone). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** File, object and field errors of the directory, as of now. */
  errors(): ObjectError[] {
    return this.provider.errors();
  }

  private progress(line: string): void {
    log.info(line);
    this.emit("progress", line);
  }

  private async boot(): Promise<void> {
    const { layout } = this.runtime;
    this.runtime.setExtra("supervisorPid", process.pid);
    this.runtime.setExtra("paths", {
      controllerSocket: this.paths.controllerSocket,
      factsFile: this.paths.factsFile,
    });
    for (const e of this.provider.errors()) this.progress(`warning: ${e.message}`);

    // Bootstrap credentials: one token per node, the CA maps it to the node.
    const tokens: Record<string, string> = {};
    for (const node of layout.nodes) {
      const token = newNodeToken();
      tokens[token] = node.name;
      writeFileAtomicSync(this.paths.nodeTokenFile(node.name), `${token}\n`, 0o600);
    }
    await writeTokenFile(this.paths.tokensFile, tokens);
    // Nodes first, so DaemonSets expand onto them.
    this.provider.setFacts({ nodes: new Map(layout.nodes.map((n) => [n.name, { address: n.ip }])) });
    this.writeFacts();

    this.runtime.on("pod-ready", (key: string) => this.setPhase(key, "ready"));
    this.runtime.on("pod-unready", (key: string) => {
      if (this.phases.get(key)?.phase === "ready") this.setPhase(key, "starting");
    });
    this.runtime.on("pod-completed", (key: string) => this.setPhase(key, "completed"));
    this.runtime.on("pod-failed", (e: { key: string; container?: string; reason: string }) => {
      this.setPhase(e.key, "failed", `${e.container ? `${e.container}: ` : ""}${e.reason}`);
    });
    this.runtime.on(
      "pod-exit",
      (e: {
        key: string;
        container: string;
        code: number | null;
        signal: string | null;
        restarting: boolean;
      }) => {
        this.progress(
          `${e.key}: container ${e.container} exited (${e.signal ?? `code ${e.code}`})${e.restarting ? ", restarting" : ""}`,
        );
      },
    );

    this.progress("starting the controller");
    const ctx = this.components();
    await this.runComponent(CONTROLLER_KEY, { controlPlane: true }, controllerContainer(ctx));
    await this.runtime.whenReady(CONTROLLER_KEY);
    await this.startDashboardForward();
    if (this.withZtunnel) {
      this.progress(`starting ${layout.nodes.length} ztunnels`);
      for (const node of layout.nodes) {
        writeFileAtomicSync(this.paths.podsFile(node.name), "[]\n");
        await this.runComponent(
          ztunnelKey(node.name),
          { node: node.name, hostNetwork: true },
          ztunnelContainer(ctx, node.name),
        );
      }
      await Promise.all(layout.nodes.map((n) => this.runtime.whenReady(ztunnelKey(n.name))));
      this.upgrader = new ZtunnelUpgrader({
        runtime: this.runtime,
        components: () => this.components(),
        runComponent: (key, where, container) => this.runComponent(key, where, container),
        progress: (line) => this.progress(line),
        forget: (key) => this.phases.delete(key),
      });
      process.on("SIGUSR2", this.onUpgradeSignal);
    } else {
      this.progress("warning: this build has no ztunnel: pods are not captured and talk plain text");
    }
    if (this.opts.observability && this.observabilityBinaries) await this.startObservability();
    this.dns = new LocalDns({
      nodes: layout.nodes,
      controllerSocket: this.paths.controllerSocket,
      podNamespace: (ip) =>
        this.runtime
          .pods()
          .find((p) => p.ip === ip && !p.hostNetwork)
          ?.key.split("/")[0],
    });
    try {
      await this.dns.start();
    } catch (e) {
      this.progress(`warning: no DNS for the pods (${(e as Error).message})`);
      this.dns = undefined;
    }
    this.provider.on("snapshot", (s: ClusterSnapshot) => this.enqueue(() => this.reconcile(s)));
    this.provider.on("errors", (errs: ObjectError[]) => {
      for (const e of errs) this.progress(`warning: ${e.message}`);
    });
    await this.enqueue(() => this.reconcile(this.provider.snapshot()));
  }

  /** The host's way to the controller's dashboard (`ambit dashboard` prints the URL from the state file). */
  private async startDashboardForward(): Promise<void> {
    const fwd = new DashboardForward({ socket: this.paths.dashboardSocket, ...dashboardForwardAddress() });
    try {
      const url = await fwd.start();
      this.dashboard = fwd;
      this.runtime.setExtra("dashboard", url);
      this.progress(`dashboard at ${url}`);
    } catch (e) {
      this.progress(`warning: no dashboard on the host (${(e as Error).message})`);
    }
  }

  private components(): ComponentContext {
    return {
      cliMain: this.cliMain,
      paths: this.paths,
      layout: this.runtime.layout,
      dir: this.opts.dir,
      env: componentEnv(process.env, this.opts.componentEnv),
      ...(this.observability ? { otlpEndpoint: this.observability.plan.otlpEndpoint } : {}),
    };
  }

  /** Prometheus and Jaeger in the control plane's namespace (before any waypoint, so they get the OTLP endpoint). */
  private async startObservability(): Promise<void> {
    const { layout } = this.runtime;
    const interval = this.opts.observability!.scrapeIntervalSeconds;
    const plan = observabilityPlan({
      dir: path.join(this.paths.root, "observability"),
      controlPlaneIp: layout.controlPlane.ip,
      scrapeIntervalSeconds: interval,
      prometheusBin: this.observabilityBinaries!.prometheus,
      jaegerBin: this.observabilityBinaries!.jaeger,
    });
    this.observability = await MeshObservability.start(plan, layout, interval);
    this.progress("starting Prometheus and Jaeger");
    await this.runComponent(PROMETHEUS_KEY, { controlPlane: true }, plan.prometheus.container);
    await this.runComponent(JAEGER_KEY, { controlPlane: true }, plan.jaeger.container);
    for (const key of [PROMETHEUS_KEY, JAEGER_KEY])
      await this.runtime.whenReady(key, { ms: 60_000, message: `${key} not ready after 60 s: see ${this.paths.podLogDir(key)}` });
    const status = this.observability.status();
    this.runtime.setExtra("observability", status);
    this.progress(`Prometheus ${status.prometheus.url}, Jaeger ${status.jaeger.url}`);
  }

  /** Prometheus' waypoint targets: the waypoint pods running now. */
  private syncWaypointTargets(): void {
    if (!this.observability) return;
    const pods = [...this.waypointPods]
      .map(([key, gateway]) => ({ rp: this.runtime.pod(key), gateway }))
      .filter((x) => x.rp !== undefined)
      .map(({ rp, gateway }) => ({ key: rp!.key, ip: rp!.ip, node: rp!.node, gateway }));
    this.observability.syncWaypoints(pods);
  }

  private async runComponent(
    key: string,
    where: { controlPlane?: boolean; node?: string; hostNetwork?: boolean },
    container: Container,
  ): Promise<void> {
    this.phases.set(key, { phase: "starting" });
    await this.runtime.runPod({
      key,
      ...where,
      spec: { restartPolicy: "Always", terminationGracePeriodSeconds: 5, containers: [container] },
    });
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.busy++;
    const run = this.queue.then(() => (this.closed ? undefined : fn()));
    this.queue = run
      .catch((e: Error) => this.progress(`error: ${e.message}`))
      .finally(() => {
        this.busy--;
        this.emit("phase");
      });
    return run;
  }

  /** Starts the pods of the snapshot that do not run yet, stops those that are gone. */
  private async reconcile(snapshot: ClusterSnapshot): Promise<void> {
    const desired = new Map<string, Pod>();
    for (const p of snapshot.pods) {
      const key = `${p.metadata.namespace ?? "default"}/${p.metadata.name}`;
      if (isComponentKey(key)) continue;
      desired.set(key, p);
    }
    const running = this.runtime.pods().filter((p) => !isComponentKey(p.key));
    for (const p of running) {
      if (desired.has(p.key)) continue;
      this.progress(`stopping pod ${p.key}`);
      this.phases.delete(p.key);
      this.waypointPods.delete(p.key);
      await this.runtime.stopPod(p.key);
      this.writeFacts();
    }
    for (const key of [...this.refused.keys()]) {
      if (desired.has(key)) continue;
      this.refused.delete(key);
      this.phases.delete(key);
    }
    this.publishFailures();
    const placed = new Map(running.filter((p) => desired.has(p.key)).map((p) => [p.key, p.node]));
    const nodes = this.runtime.layout.nodes.map((n) => n.name);
    const placement = placePods(
      [...desired.entries()].map(([key, p]) => ({
        key,
        ...(p.spec.nodeName ? { nodeName: p.spec.nodeName } : {}),
      })),
      nodes,
      placed,
    );
    for (const [key, pod] of desired) {
      if (this.runtime.pod(key)) continue;
      const specJson = JSON.stringify(pod.spec);
      if (this.refused.get(key) === specJson) continue;
      const node = placement.get(key)!;
      const launch = planPodLaunch(key, pod, node, {
        components: this.components(),
        nodes,
        withZtunnel: this.withZtunnel,
        hasWaypointCommand: this.hasWaypointCommand,
      });
      if ("refuse" in launch) {
        this.refuse(key, specJson, launch.refuse);
        continue;
      }
      if (launch.waypointGateway) this.waypointPods.set(key, launch.waypointGateway);
      this.refused.delete(key);
      this.phases.set(key, { phase: "starting" });
      const rp = await this.runtime.runPod({
        key,
        node,
        ...(launch.spec.hostNetwork ? { hostNetwork: true } : {}),
        spec: launch.spec,
        fieldRefs: launch.fieldRefs,
      });
      if (rp.network && this.dns) {
        const gateway = nodeOf(this.runtime.layout, node).podGateway;
        await applySteps(planPodDns(rp.network, { ip: gateway, port: 53 })).catch((e: Error) =>
          this.progress(`warning: pod ${key}: no DNS (${e.message})`),
        );
      }
      this.progress(`pod ${key} on ${node} at ${rp.ip}`);
      this.writeFacts();
    }
    this.syncWaypointTargets();
    this.publishWaypointAdmin();
  }

  /**
   * Where each waypoint's admin port is (its pod's namespace, the waypoint's
   * default --admin-port 15000), for `ambit config-dump waypoint`, `why` and
   * `check` (state file `extra.waypointAdmin`, by Gateway NS/NAME).
   */
  private publishWaypointAdmin(): void {
    if (this.closed) return;
    const admin: Record<string, { netns: string; host: string; port: number; pod: string }> = {};
    for (const [key, gateway] of [...this.waypointPods].sort(([a], [b]) => a.localeCompare(b))) {
      const rp = this.runtime.pod(key);
      if (rp && !admin[gateway])
        admin[gateway] = { netns: rp.netnsPath, host: "127.0.0.1", port: 15000, pod: key };
    }
    this.runtime.setExtra("waypointAdmin", admin);
  }

  private refuse(key: string, specJson: string, message: string): void {
    this.refused.set(key, specJson);
    this.setPhase(key, "failed", message);
  }

  /** Pods that failed or were refused, for `ambit status` (state file `extra.podFailures`). */
  private publishFailures(): void {
    if (this.closed) return;
    const failures = Object.fromEntries(
      [...this.phases].filter(([, p]) => p.phase === "failed").map(([k, p]) => [k, p.message ?? "failed"]),
    );
    this.runtime.setExtra("podFailures", failures);
  }

  private setPhase(key: string, phase: PodPhase, message?: string): void {
    const before = this.phases.get(key);
    if (before?.phase === phase && before.message === message) return;
    this.phases.set(key, { phase, ...(message ? { message } : {}) });
    if (phase === "failed" || before?.phase === "failed") this.publishFailures();
    if (phase === "failed") this.progress(`pod ${key} failed: ${message ?? ""}`);
    else if (phase === "ready")
      this.progress(`${isComponentKey(key) ? key.slice(SYSTEM_NAMESPACE.length + 1) : `pod ${key}`} ready`);
    if (!isComponentKey(key)) this.writeFacts();
    this.emit("phase", key, phase);
  }

  private podFacts(): RunningPodFacts[] {
    return this.runtime
      .pods()
      .filter((p) => !isComponentKey(p.key))
      .map((p) => ({ key: p.key, node: p.node, ip: p.ip, netnsPath: p.netnsPath, ready: p.runner.ready }));
  }

  /** Rewrites the facts file and every node's pods file (atomically; readers poll them). */
  private writeFacts(): void {
    if (this.closed) return;
    const pods = this.podFacts();
    writeFileAtomicSync(this.paths.factsFile, `${JSON.stringify(factsJson(this.runtime.layout, pods), null, 2)}\n`);
    for (const node of this.runtime.layout.nodes) {
      writeFileAtomicSync(
        this.paths.podsFile(node.name),
        `${JSON.stringify(podsFileJson(node.name, pods), null, 2)}\n`,
      );
    }
  }

  /** Where every pod and component stands now. */
  report(): SettledReport {
    const summarize = (key: string): PodSummary => {
      const rp = this.runtime.pod(key);
      const ph = this.phases.get(key) ?? { phase: "starting" as const };
      return {
        key,
        node: rp?.node ?? "",
        ip: rp?.ip ?? "",
        phase: ph.phase,
        ...(ph.message ? { message: ph.message } : {}),
      };
    };
    const keys = [...new Set([...this.phases.keys(), ...this.runtime.pods().map((p) => p.key)])].sort();
    const pods = keys.filter((k) => !isComponentKey(k)).map(summarize);
    const components = keys.filter((k) => isComponentKey(k)).map(summarize);
    const settled = this.busy === 0 && [...pods, ...components].every((p) => p.phase !== "starting");
    return { settled, pods, components, errors: this.provider.errors() };
  }

  /** Resolves when nothing is starting any more (or at the timeout, with `settled: false`). */
  whenSettled(timeoutMs: number): Promise<SettledReport> {
    return new Promise((resolve) => {
      const check = () => {
        const r = this.report();
        if (!r.settled) return false;
        done(r);
        return true;
      };
      const done = (r: SettledReport) => {
        clearTimeout(timer);
        this.off("phase", check);
        resolve(r);
      };
      const timer = setTimeout(() => done(this.report()), timeoutMs);
      this.on("phase", check);
      // Closed while waiting (Ctrl-C): answer at once with what there was.
      this.once("closing", () => done(this.report()));
      check();
    });
  }

  /** Stops the pods, the components, removes the namespaces and the state. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.emit("closing");
    process.off("SIGUSR2", this.onUpgradeSignal);
    this.upgrader?.close();
    await this.queue.catch(() => undefined);
    await this.provider.close();
    await this.dns?.close();
    await this.dashboard?.close();
    await this.observability?.close();
    await this.runtime.close();
  }
}

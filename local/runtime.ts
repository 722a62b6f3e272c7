// LocalRuntime: the process that runs a local mesh (`ambit up`) uses this one
// object for nodes, pods and processes. It owns the MeshNetwork, one
// PodRunner per pod, and the state file that other processes (`status`,
// `exec`, `logs`, `down`) read.
//
//   const rt = await LocalRuntime.start({ meshId: "demo", nodes: ["node1", "node2"], dir });
//   await rt.runPod({ key: "ambit-system/controller", controlPlane: true, spec: { containers: [...] } });
//   await rt.runPod({ key: "ambit-system/ztunnel-node1", node: "node1", hostNetwork: true, spec });
//   const web = await rt.runPod({ key: "demo/web-0", node: "node2", spec: pod.spec });
//   rt.on("pod-ready", (key) => ...);            // readiness gates endpoints
//   rt.setPodInfo("demo/web-0", { enrolled: true, identity: "spiffe://..." });
//   await rt.stopPod("demo/web-0");
//   await rt.close();                            // `down`: processes, namespaces, state
//
// Components (controller, ztunnels) are "hostNetwork" pods: they run in the
// control plane's or a node's namespace, with the same restarts, probes and
// logs as application pods.
import { EventEmitter } from "node:events";
import path from "node:path";
import type { PodSpec } from "../controller/provider/objects.js";
import { AmbitError } from "../core/errors/errors.js";
import { requireNetnsPrivileges } from "../ztunnel/node-agent/native.js";
import { MeshNetwork } from "./mesh-network.js";
import { type MeshLayout, nodeOf, type PodNetwork } from "./network.js";
import { execInNetns } from "./netns-process.js";
import { PodRunner, type PodRunnerOptions } from "./pod-runner.js";
import {
  logDir,
  type MeshState,
  newState,
  type PodRecord,
  processRecord,
  readState,
  writeState,
} from "./state.js";
import { teardownMesh } from "./teardown.js";

export interface LocalRuntimeOptions {
  meshId: string;
  nodes: string[];
  /** The directory given to `ambit up` (recorded for `status`). */
  dir?: string;
  /** Remove a previous mesh with the same id first (else: refuse). */
  replace?: boolean;
  /** Back-off and probe pacing for every pod. */
  runner?: PodRunnerOptions;
}

export interface RunPodRequest {
  /** "namespace/name". */
  key: string;
  /** Node to run on; required unless `controlPlane`. */
  node?: string;
  /** Run in the control plane's namespace (implies hostNetwork). */
  controlPlane?: boolean;
  /** Share the node's namespace instead of getting one (ztunnel). */
  hostNetwork?: boolean;
  /** Requested pod IP (else the node's lowest free one). */
  ip?: string;
  spec: Pick<PodSpec, "containers" | "initContainers" | "restartPolicy" | "terminationGracePeriodSeconds">;
  /** Extra fieldRef values (spec.serviceAccountName, metadata.labels['x']...). */
  fieldRefs?: Record<string, string>;
}

export interface RunningPod {
  key: string;
  /** Where its processes run. hostNetwork pods share the node's (or control plane's) address. */
  netnsPath: string;
  ip: string;
  node: string;
  hostNetwork: boolean;
  runner: PodRunner;
  network?: PodNetwork;
}

export class LocalRuntime extends EventEmitter {
  private readonly running = new Map<string, RunningPod>();
  private closed = false;

  private constructor(
    private readonly network: MeshNetwork,
    private readonly state: MeshState,
    private readonly opts: LocalRuntimeOptions,
  ) {
    super();
  }

  /** Builds the mesh's namespaces and writes its state file. */
  static async start(opts: LocalRuntimeOptions): Promise<LocalRuntime> {
    requireNetnsPrivileges("ambit up");
    const previous = readState(opts.meshId);
    if (previous && !opts.replace) {
      throw new AmbitError(
        "LOCAL_STATE",
        `a local mesh '${opts.meshId}' is already up (from ${previous.dir ?? "?"}); run 'ambit down' first`,
      );
    }
    if (previous) await teardownMesh(opts.meshId);
    const network = await MeshNetwork.create(
      { meshId: opts.meshId, nodes: opts.nodes },
      opts.replace ? { replace: true } : {},
    );
    const state = newState(network.layout, opts.dir);
    writeState(state);
    return new LocalRuntime(network, state, opts);
  }

  get layout(): MeshLayout {
    return this.network.layout;
  }

  get meshId(): string {
    return this.network.layout.meshId;
  }

  pods(): RunningPod[] {
    return [...this.running.values()];
  }

  pod(key: string): RunningPod | undefined {
    return this.running.get(key);
  }

  /** Log file of a pod's container. */
  logFile(key: string, container: string): string {
    return path.join(logDir(this.meshId), key.replace(/\//g, "."), `${container}.log`);
  }

  /**
   * Gives the pod its namespace (unless hostNetwork) and starts its
   * containers. Resolves once the processes are started, not when ready:
   * wait for "pod-ready" (or `whenReady`). A pod already running is returned.
   */
  async runPod(req: RunPodRequest): Promise<RunningPod> {
    if (this.closed) throw new AmbitError("LOCAL_STATE", "the local mesh is shutting down");
    const have = this.running.get(req.key);
    if (have) return have;
    const hostNetwork = Boolean(req.hostNetwork || req.controlPlane);
    let where: { netnsPath: string; ip: string; node: string; network?: PodNetwork };
    if (req.controlPlane) {
      where = {
        netnsPath: this.layout.controlPlane.netnsPath,
        ip: this.layout.controlPlane.ip,
        node: "control-plane",
      };
    } else {
      if (!req.node) throw new AmbitError("INVALID_FIELD", `pod ${req.key}: no node given`);
      const node = nodeOf(this.layout, req.node);
      if (hostNetwork) where = { netnsPath: node.netnsPath, ip: node.ip, node: node.name };
      else {
        const network = await this.network.addPod({
          key: req.key,
          node: node.name,
          ...(req.ip ? { ip: req.ip } : {}),
        });
        where = { netnsPath: network.netnsPath, ip: network.ip, node: node.name, network };
      }
    }
    const runner = new PodRunner(
      {
        key: req.key,
        netnsPath: where.netnsPath,
        ip: where.ip,
        containers: req.spec.containers,
        ...(req.spec.initContainers ? { initContainers: req.spec.initContainers } : {}),
        ...(req.spec.restartPolicy ? { restartPolicy: req.spec.restartPolicy } : {}),
        ...(req.spec.terminationGracePeriodSeconds !== undefined
          ? { terminationGracePeriodSeconds: req.spec.terminationGracePeriodSeconds }
          : {}),
        fieldRefs: {
          "spec.nodeName": where.node,
          "status.hostIP": hostNetwork ? where.ip : nodeOf(this.layout, where.node).ip,
          ...req.fieldRefs,
        },
        logDir: path.dirname(this.logFile(req.key, "x")),
      },
      this.opts.runner,
    );
    const pod: RunningPod = {
      key: req.key,
      netnsPath: where.netnsPath,
      ip: where.ip,
      node: where.node,
      hostNetwork,
      runner,
    };
    if (where.network) pod.network = where.network;
    this.running.set(req.key, pod);
    const record: PodRecord = where.network ?? {
      key: req.key,
      node: where.node,
      netns: path.basename(where.netnsPath),
      netnsPath: where.netnsPath,
      ip: where.ip,
      nodeIf: "",
    };
    this.state.pods[req.key] = { ...record, ready: false, restarts: {} };
    runner.on("start", (e: { container: string; pid: number; restarts: number }) => {
      this.recordProcess(
        `${req.key}/${e.container}`,
        e.pid,
        path.basename(where.netnsPath),
        this.logFile(req.key, e.container),
      );
      const rec = this.state.pods[req.key];
      if (rec) rec.restarts = { ...rec.restarts, [e.container]: e.restarts };
      this.save();
    });
    runner.on("ready", () => this.setReady(req.key, true));
    runner.on("unready", () => this.setReady(req.key, false));
    runner.on("exit", (e) => this.emit("pod-exit", { key: req.key, ...e }));
    runner.on("failed", (e) => this.emit("pod-failed", { key: req.key, ...e }));
    runner.on("completed", () => this.emit("pod-completed", req.key));
    this.save();
    runner.start();
    return pod;
  }

  /** Resolves when the pod is ready (immediately if it is). */
  whenReady(key: string, timeout?: { ms: number; message: string }): Promise<void> {
    const pod = this.running.get(key);
    if (!pod) return Promise.reject(new AmbitError("INVALID_FIELD", `no pod ${key} in mesh ${this.meshId}`));
    if (pod.runner.ready) return Promise.resolve();
    const ready = new Promise<void>((resolve) => pod.runner.once("ready", () => resolve()));
    if (!timeout) return ready;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AmbitError("LOCAL_STATE", timeout.message)), timeout.ms);
    });
    return Promise.race([ready, late]).finally(() => clearTimeout(timer));
  }

  /** Records what `ambit status` shows about a pod beyond what the runtime knows. */
  setPodInfo(key: string, info: { enrolled?: boolean; identity?: string }): void {
    const rec = this.state.pods[key];
    if (!rec) return;
    Object.assign(rec, info);
    this.save();
  }

  /** Free-form values for other commands (controller address, ...). */
  setExtra(key: string, value: unknown): void {
    this.state.extra = { ...this.state.extra, [key]: value };
    this.save();
  }

  /** Stops the pod's containers and removes its namespace. */
  async stopPod(key: string): Promise<void> {
    const pod = this.running.get(key);
    if (!pod) return;
    this.running.delete(key);
    await pod.runner.close();
    if (!pod.hostNetwork) await this.network.removePod(key);
    delete this.state.pods[key];
    this.state.processes = this.state.processes.filter((p) => !p.name.startsWith(`${key}/`));
    this.save();
  }

  /** Runs a command inside the pod's namespace (as `ambit exec` does). */
  exec(key: string, argv: string[], opts: Parameters<typeof execInNetns>[2] = {}): Promise<number> {
    const pod = this.running.get(key);
    if (!pod) return Promise.reject(new AmbitError("INVALID_FIELD", `no pod ${key} in mesh ${this.meshId}`));
    return execInNetns(pod.netnsPath, argv, opts);
  }

  /** `down`: stops every pod (components last), removes the namespaces and the state file. */
  async close(opts: { keepLogs?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pods = [...this.running.values()];
    await Promise.all(pods.filter((p) => !p.hostNetwork).map((p) => p.runner.close()));
    await Promise.all(pods.filter((p) => p.hostNetwork).map((p) => p.runner.close()));
    this.running.clear();
    this.state.processes = [];
    this.save();
    await this.network.destroy();
    await teardownMesh(this.meshId, opts);
  }

  // ---------- internals ----------

  private setReady(key: string, ready: boolean): void {
    const rec = this.state.pods[key];
    if (rec) rec.ready = ready;
    this.save();
    this.emit(ready ? "pod-ready" : "pod-unready", key);
  }

  private recordProcess(name: string, pid: number, netns: string, logFile: string): void {
    this.state.processes = this.state.processes.filter((p) => p.name !== name);
    this.state.processes.push(processRecord(name, pid, { netns, logFile }));
  }

  private save(): void {
    writeState(this.state);
  }
}

/** `ambit exec NS/POD -- CMD` from another process: finds the pod in the state file. */
export async function execInPod(
  meshId: string,
  key: string,
  argv: string[],
  opts: Parameters<typeof execInNetns>[2] = {},
): Promise<number> {
  requireNetnsPrivileges("ambit exec");
  const state = readState(meshId);
  if (!state) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' is up`);
  const pod = state.pods[key];
  if (!pod) {
    const known = Object.keys(state.pods).sort().join(", ");
    throw new AmbitError("INVALID_FIELD", `no pod ${key} in mesh ${meshId} (pods: ${known || "none"})`);
  }
  return execInNetns(pod.netnsPath, argv, opts);
}

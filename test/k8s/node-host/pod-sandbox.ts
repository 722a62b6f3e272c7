// One pod on a test node, from sandbox to teardown, as kubelet runs it:
// network namespace (through the node's CNI chain; or the node's own for
// hostNetwork), /etc/hosts, volumes, then the containers in the shared
// local/pod-runner.ts PodRunner (images mapped to local programs, each
// container in a mount namespace with its volumes), and status back to the
// API server (phase, IPs, conditions, container states and restarts).
import fs from "node:fs";
import path from "node:path";
import type { KubeClient } from "../../../controller/provider/kube/client.js";
import type { Container, Pod } from "../../../controller/provider/objects.js";
import { applySteps, killNetnsProcesses } from "../../../local/network.js";
import { type ContainerStatus, PodRunner } from "../../../local/pod-runner.js";
import { type CniConfList, cniAdd, cniDel, loadConfList, resultIp, runProcess } from "./cni.js";
import { resolveImage } from "./images.js";
import type { Bind, NodeView } from "./node-view.js";
import {
  containerBinds,
  makeVolumes,
  type Volume,
  type VolumeApi,
  type VolumeMount,
  VolumeNotReady,
} from "./volumes.js";

/** The pod fields the node host reads beyond objects.ts's Pod. */
export interface RunPod extends Pod {
  metadata: Pod["metadata"] & {
    uid: string;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
  };
  spec: Pod["spec"] & {
    volumes?: Volume[];
    containers: (Container & { volumeMounts?: VolumeMount[] })[];
    initContainers?: (Container & { volumeMounts?: VolumeMount[] })[];
  };
}

/** What a pod needs from its node. */
export interface NodeContext {
  name: string;
  netnsPath: string;
  ip: string;
  /** Prefix of every namespace this node host makes. */
  netnsPrefix: string;
  view: NodeView;
  client: KubeClient;
  volumeApi: VolumeApi;
  /** The `kubernetes` Service's ClusterIP (KUBERNETES_SERVICE_HOST). */
  apiServiceIp: () => string | undefined;
  /** /etc/hosts content for a pod. */
  hostsFor: (pod: { hostname: string; ip: string; namespace: string }) => string;
  /** Directory for pods' files. */
  podsDir: string;
  maxGraceMs: number;
}

const LOOPBACK_CONF: CniConfList = {
  cniVersion: "1.0.0",
  name: "loopback",
  plugins: [{ type: "loopback" }],
};

function cond(type: string, ok: boolean, prev: Map<string, string>, now: string) {
  const status = ok ? "True" : "False";
  const key = `${type}=${status}`;
  if (!prev.has(key)) {
    prev.delete(`${type}=${ok ? "False" : "True"}`);
    prev.set(key, now);
  }
  return { type, status, lastTransitionTime: prev.get(key) };
}

export class PodSandbox {
  readonly key: string;
  netnsPath?: string;
  ip?: string;
  hostsPath?: string;
  readonly dir: string;
  private runner?: PodRunner;
  private netns?: string;
  private cniList?: CniConfList;
  private stopped = false;
  private startedAt = new Date().toISOString();
  private phase: "Pending" | "Running" | "Succeeded" | "Failed" = "Pending";
  private transitions = new Map<string, string>();
  private statusTimer?: NodeJS.Timeout;
  private statusChain: Promise<void> = Promise.resolve();
  private readonly startedContainers = new Map<string, string>();

  constructor(
    public pod: RunPod,
    private readonly node: NodeContext,
  ) {
    this.key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    this.dir = path.join(node.podsDir, `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`);
  }

  get logDir(): string {
    return path.join(this.dir, "logs");
  }

  /** The argv that runs `argv` in this pod's network and a container's mount view. */
  wrap(argv: string[], container?: string): string[] {
    const c = [...this.pod.spec.containers].find((x) => x.name === container) ?? this.pod.spec.containers[0]!;
    return ["nsenter", `--net=${this.netnsPath}`, "--", ...this.node.view.wrap(argv, this.binds(c))];
  }

  private made = new Map<string, string>();

  private binds(c: Container & { volumeMounts?: VolumeMount[] }): Bind[] {
    const b = containerBinds(c.volumeMounts, this.made);
    if (this.hostsPath) b.push({ source: this.hostsPath, target: "/etc/hosts" });
    return b;
  }

  /** Sets up and starts the pod; errors are reported in the pod's status and retried for volumes. */
  async start(): Promise<void> {
    try {
      // kubelet retries a sandbox whose network setup failed (e.g. a chained
      // plugin not installed yet): tear down what was made, back off, again.
      for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
        try {
          await this.setUpNetwork();
          break;
        } catch (e) {
          if (this.stopped) return;
          this.reportStatus(`sandbox: ${(e as Error).message}`);
          await this.tearDownNetwork();
          await new Promise((r) => setTimeout(r, delay));
          if (this.stopped) return;
        }
      }
      if (this.stopped) return;
      this.writeHosts();
      await this.setUpVolumes();
      if (this.stopped) return;
      this.run();
    } catch (e) {
      if (this.stopped) return;
      this.reportStatus(`sandbox: ${(e as Error).message}`);
      throw e;
    }
  }

  private async setUpNetwork(): Promise<void> {
    if (this.pod.spec.hostNetwork) {
      this.netnsPath = this.node.netnsPath;
      this.ip = this.node.ip;
      return;
    }
    const short = `${this.pod.metadata.namespace}.${this.pod.metadata.name}`.slice(0, 150);
    this.netns = `${this.node.netnsPrefix}p-${short}-${this.pod.metadata.uid.slice(0, 8)}`;
    this.netnsPath = `/var/run/netns/${this.netns}`;
    await applySteps([["ip", "netns", "add", this.netns]]);
    const inv = {
      containerId: this.pod.metadata.uid,
      netnsPath: this.netnsPath,
      ifName: "eth0",
      args: {
        IgnoreUnknown: "1",
        K8S_POD_NAMESPACE: this.pod.metadata.namespace ?? "default",
        K8S_POD_NAME: this.pod.metadata.name,
        K8S_POD_INFRA_CONTAINER_ID: this.pod.metadata.uid,
        K8S_POD_UID: this.pod.metadata.uid,
      },
      binDirs: ["/opt/cni/bin", "/usr/lib/cni"],
      hostPathOf: (p: string) => this.node.view.hostPathOf(p),
    };
    const run = (argv: string[], env: NodeJS.ProcessEnv, stdin: string) =>
      runProcess(["nsenter", `--net=${this.node.netnsPath}`, "--", ...this.node.view.wrap(argv)], env, stdin);
    await cniAdd(LOOPBACK_CONF, { ...inv, ifName: "lo" }, run);
    this.cniList = loadConfList(this.node.view.local("/etc/cni/net.d"));
    this.cniInv = inv;
    this.cniRun = run;
    const result = await cniAdd(this.cniList, inv, run);
    const ip = resultIp(result);
    if (!ip) throw new Error(`CNI ${this.cniList.name}: no IPv4 address in the result`);
    this.ip = ip;
  }

  private cniInv?: Parameters<typeof cniAdd>[1];
  private cniRun?: Parameters<typeof cniAdd>[2];

  writeHosts(): void {
    if (!this.ip) return;
    this.hostsPath ??= path.join(this.dir, "etc-hosts");
    fs.mkdirSync(this.dir, { recursive: true });
    const text = this.node.hostsFor({
      hostname: this.pod.spec.hostNetwork ? this.node.name : this.pod.metadata.name,
      ip: this.ip,
      namespace: this.pod.metadata.namespace ?? "default",
    });
    // In place: the file is bind-mounted, a rename would not be seen.
    if (!fs.existsSync(this.hostsPath) || fs.readFileSync(this.hostsPath, "utf8") !== text)
      fs.writeFileSync(this.hostsPath, text);
  }

  private fields(): Record<string, string> {
    const m = this.pod.metadata;
    return {
      "metadata.name": m.name,
      "metadata.namespace": m.namespace ?? "default",
      "metadata.uid": m.uid,
      "spec.nodeName": this.node.name,
      "spec.serviceAccountName": this.serviceAccount(),
      "status.hostIP": this.node.ip,
      "status.podIP": this.ip ?? "",
      "status.podIPs": this.ip ?? "",
      "status.hostIPs": this.node.ip,
    };
  }

  private serviceAccount(): string {
    return this.pod.spec.serviceAccountName ?? this.pod.spec.serviceAccount ?? "default";
  }

  private async setUpVolumes(): Promise<void> {
    let delay = 200;
    for (;;) {
      try {
        this.made = await makeVolumes(
          this.pod.spec.volumes ?? [],
          this.dir,
          {
            namespace: this.pod.metadata.namespace ?? "default",
            name: this.pod.metadata.name,
            uid: this.pod.metadata.uid,
            serviceAccount: this.serviceAccount(),
            fields: this.fields(),
          },
          this.node.volumeApi,
          this.node.view,
        );
        return;
      } catch (e) {
        if (!(e instanceof VolumeNotReady) || this.stopped) throw e;
        this.reportStatus(`ContainerCreating: ${e.message}`);
        // kubelet retries volume setup the same way (a ConfigMap published later).
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  private run(): void {
    const svcIp = this.node.apiServiceIp();
    const serviceEnv = svcIp
      ? [
          { name: "KUBERNETES_SERVICE_HOST", value: svcIp },
          { name: "KUBERNETES_SERVICE_PORT", value: "443" },
          { name: "KUBERNETES_SERVICE_PORT_HTTPS", value: "443" },
          { name: "KUBERNETES_PORT", value: `tcp://${svcIp}:443` },
        ]
      : [];
    const withEnv = (c: Container): Container => ({ ...c, env: [...serviceEnv, ...(c.env ?? [])] });
    const byName = new Map(
      [...this.pod.spec.containers, ...(this.pod.spec.initContainers ?? [])].map((c) => [c.name, c]),
    );
    const runner = new PodRunner(
      {
        key: this.key,
        netnsPath: this.netnsPath!,
        ip: this.ip!,
        containers: this.pod.spec.containers.map(withEnv),
        initContainers: (this.pod.spec.initContainers ?? []).map(withEnv),
        restartPolicy: this.pod.spec.restartPolicy ?? "Always",
        fieldRefs: this.fields(),
        logDir: this.logDir,
        terminationGracePeriodSeconds: this.pod.spec.terminationGracePeriodSeconds ?? 30,
      },
      {
        image: resolveImage,
        sandbox: (c, argv) => this.node.view.wrap(argv, this.binds(byName.get(c.name) ?? c)),
        maxGraceMs: this.node.maxGraceMs,
        backoff: { initialMs: 1000, maxMs: 10_000 },
      },
    );
    this.runner = runner;
    runner.on("start", (e: { container: string }) => {
      this.startedContainers.set(e.container, new Date().toISOString());
      this.phase = "Running";
      this.scheduleStatus();
    });
    for (const ev of ["exit", "ready", "unready"]) runner.on(ev, () => this.scheduleStatus());
    runner.on("completed", (st: ContainerStatus[]) => {
      this.phase = st.every((s) => s.exitCode === 0) ? "Succeeded" : "Failed";
      this.scheduleStatus();
    });
    runner.on("failed", (e: { reason: string }) => {
      if (this.pod.spec.restartPolicy === "Never") this.phase = "Failed";
      this.reportStatus(e.reason);
    });
    runner.start();
    this.scheduleStatus();
  }

  /** Coalesces status writes (several runner events arrive together). */
  private scheduleStatus(): void {
    if (this.statusTimer || this.stopped) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.reportStatus();
    }, 50);
  }

  private reportStatus(message?: string): void {
    if (this.stopped) return;
    const body = this.statusBody(message);
    this.statusChain = this.statusChain
      .then(() =>
        this.node.client.request({
          method: "PATCH",
          path: `/api/v1/namespaces/${this.pod.metadata.namespace}/pods/${this.pod.metadata.name}/status`,
          body,
          contentType: "application/merge-patch+json",
        }),
      )
      .then(
        () => undefined,
        () => undefined, // the pod may be gone; the next event writes again
      );
  }

  /** The status subresource as kubelet writes it (pure but for the clock). */
  statusBody(message?: string): unknown {
    const now = new Date().toISOString();
    const st = this.runner?.status() ?? [];
    const ready = st.length > 0 && st.every((s) => s.ready && s.state === "running");
    const images = new Map(this.pod.spec.containers.map((c) => [c.name, c.image ?? ""]));
    return {
      status: {
        phase: this.phase,
        ...(message ? { message: message.slice(0, 1000) } : {}),
        hostIP: this.node.ip,
        hostIPs: [{ ip: this.node.ip }],
        ...(this.ip ? { podIP: this.ip, podIPs: [{ ip: this.ip }] } : {}),
        startTime: this.startedAt,
        conditions: [
          cond("PodReadyToStartContainers", this.netnsPath !== undefined, this.transitions, now),
          cond("Initialized", this.runner !== undefined, this.transitions, now),
          cond("ContainersReady", ready, this.transitions, now),
          cond("Ready", ready, this.transitions, now),
          cond("PodScheduled", true, this.transitions, now),
        ],
        containerStatuses: this.pod.spec.containers.map((c) => {
          const s = st.find((x) => x.name === c.name);
          const started = this.startedContainers.get(c.name) ?? now;
          const state =
            s?.state === "running"
              ? { running: { startedAt: started } }
              : s?.state === "terminated"
                ? {
                    terminated: {
                      exitCode: s.exitCode ?? 137,
                      reason: s.exitCode === 0 ? "Completed" : "Error",
                      startedAt: started,
                      finishedAt: now,
                    },
                  }
                : { waiting: { reason: "ContainerCreating" } };
          return {
            name: c.name,
            image: images.get(c.name) || "unknown",
            imageID: "",
            containerID: s?.pid ? `ambit-test://${s.pid}` : undefined,
            ready: s?.ready ?? false,
            started: s?.state === "running",
            restartCount: s?.restarts ?? 0,
            state,
          };
        }),
      },
    };
  }

  /** Stops the containers (grace from the pod) and tears the sandbox down (CNI DEL, namespace). */
  async stop(graceSeconds?: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.statusTimer);
    if (this.runner) {
      if (graceSeconds !== undefined) this.runner.spec.terminationGracePeriodSeconds = graceSeconds;
      await this.runner.close();
    }
    await this.statusChain;
    if (this.netns) await killNetnsProcesses([this.netns], 1000);
    await this.tearDownNetwork();
  }

  private async tearDownNetwork(): Promise<void> {
    if (!this.netns) return;
    if (this.cniList && this.cniInv && this.cniRun)
      await cniDel(this.cniList, this.cniInv, this.cniRun).catch(() => undefined);
    await applySteps([["sh", "-c", `ip netns del ${this.netns} 2>/dev/null || true`]]);
    this.cniList = undefined;
  }
}

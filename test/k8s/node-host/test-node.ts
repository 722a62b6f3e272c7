// One test node (kubelet's part): registers the Node, keeps it Ready with a
// Lease in kube-node-lease (and a status heartbeat), writes the node's CNI
// configuration once the controller manager gave it a podCIDR, watches the
// pods bound to it (spec.nodeName) and runs each in a PodSandbox; a pod
// marked for deletion is stopped within its grace period and then removed
// from the API (DELETE with grace 0 and a uid precondition), as kubelet does.
import fs from "node:fs";
import path from "node:path";
import { type KubernetesObject, ListWatch, Watch } from "@kubernetes/client-node";
import { isConflict, isNotFound, type KubeClient } from "../../../controller/provider/kube/client.js";
import { KUBE_VERSION } from "../cluster.js";
import type { NodeView } from "./node-view.js";
import { type NodeContext, PodSandbox, type RunPod } from "./pod-sandbox.js";

export interface TestNodeOptions {
  name: string;
  netnsPath: string;
  netnsPrefix: string;
  ip: string;
  view: NodeView;
  client: KubeClient;
  context: Omit<NodeContext, "name" | "netnsPath" | "ip" | "netnsPrefix" | "view" | "client">;
  /** Seconds between Lease renewals (default 10). */
  leaseRenewSeconds?: number;
}

export class TestNode {
  readonly name: string;
  readonly ip: string;
  podCidr?: string;
  private readonly sandboxes = new Map<string, PodSandbox>();
  private readonly stopping = new Map<string, Promise<void>>();
  private lw?: ListWatch<KubernetesObject>;
  private heartbeat?: NodeJS.Timeout;
  private closed = false;
  private readonly ctx: NodeContext;

  constructor(private readonly o: TestNodeOptions) {
    this.name = o.name;
    this.ip = o.ip;
    this.ctx = {
      ...o.context,
      name: o.name,
      netnsPath: o.netnsPath,
      ip: o.ip,
      netnsPrefix: o.netnsPrefix,
      view: o.view,
      client: o.client,
    };
  }

  get netnsPath(): string {
    return this.o.netnsPath;
  }

  get view(): NodeView {
    return this.o.view;
  }

  pods(): PodSandbox[] {
    return [...this.sandboxes.values()];
  }

  /** Registers the Node and its Lease, reports Ready. */
  async register(): Promise<void> {
    const c = this.o.client;
    try {
      await c.request({
        method: "POST",
        path: "/api/v1/nodes",
        body: {
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name: this.name,
            labels: {
              "kubernetes.io/hostname": this.name,
              "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64",
            },
          },
          spec: {},
        },
      });
    } catch (e) {
      if (!isConflict(e)) throw e;
    }
    await this.writeNodeStatus();
    await this.renewLease();
    const every = (this.o.leaseRenewSeconds ?? 10) * 1000;
    let beats = 0;
    this.heartbeat = setInterval(() => {
      beats++;
      void this.renewLease().catch(() => undefined);
      if (beats % 4 === 0) void this.writeNodeStatus().catch(() => undefined);
    }, every);
  }

  private async writeNodeStatus(): Promise<void> {
    const now = new Date().toISOString();
    const c = (type: string, status: string, reason: string) => ({
      type,
      status,
      reason,
      message: reason,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    const resources = { cpu: "16", memory: "32Gi", pods: "110", "ephemeral-storage": "100Gi" };
    await this.o.client.request({
      method: "PATCH",
      path: `/api/v1/nodes/${this.name}/status`,
      contentType: "application/merge-patch+json",
      body: {
        status: {
          conditions: [
            c("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            c("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            c("PIDPressure", "False", "KubeletHasSufficientPID"),
            c("Ready", "True", "KubeletReady"),
          ],
          addresses: [
            { type: "InternalIP", address: this.ip },
            { type: "Hostname", address: this.name },
          ],
          capacity: resources,
          allocatable: resources,
          daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
          nodeInfo: {
            machineID: "",
            systemUUID: "",
            bootID: "",
            kernelVersion: "",
            osImage: "ambit test node",
            containerRuntimeVersion: "ambit-test://1",
            kubeletVersion: KUBE_VERSION,
            kubeProxyVersion: "",
            operatingSystem: "linux",
            architecture: "amd64",
          },
        },
      },
    });
  }

  private async renewLease(): Promise<void> {
    const c = this.o.client;
    const p = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.name}`;
    const renewTime = new Date().toISOString().replace("Z", "000Z");
    try {
      const lease = await c.get<{ metadata: Record<string, unknown>; spec: Record<string, unknown> }>(p);
      await c.request({ method: "PUT", path: p, body: { ...lease, spec: { ...lease.spec, renewTime } } });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await c.request({
        method: "POST",
        path: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.name, namespace: "kube-node-lease" },
          spec: { holderIdentity: this.name, leaseDurationSeconds: 40, renewTime },
        },
      });
    }
  }

  /** Waits until the controller manager allocated the node's podCIDR (the node IPAM controller). */
  async waitPodCidr(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      const n = await this.o.client.get<{ spec?: { podCIDR?: string } }>(`/api/v1/nodes/${this.name}`);
      if (n.spec?.podCIDR) {
        this.podCidr = n.spec.podCIDR;
        return n.spec.podCIDR;
      }
      if (Date.now() > deadline) throw new Error(`node ${this.name}: no podCIDR within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay)); // the API has no event for "allocated" short of a watch
    }
  }

  /** The node's CNI network: bridge + host-local on its podCIDR (data, in its CNI config dir). */
  writeCniConfig(): void {
    if (!this.podCidr) throw new Error(`node ${this.name}: no podCIDR yet`);
    const dir = this.o.view.local("/etc/cni/net.d");
    const conf = {
      cniVersion: "1.0.0",
      name: "ambit-test",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: this.podCidr }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        },
      ],
    };
    fs.writeFileSync(path.join(dir, "10-ambit-test.conflist"), `${JSON.stringify(conf, null, 2)}\n`);
  }

  /** Starts watching the pods bound to this node. */
  async start(): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.name}`;
    const lw = new ListWatch<KubernetesObject>(
      "/api/v1/pods",
      new Watch(this.o.client.config),
      // biome-ignore lint/suspicious/noExplicitAny: ListWatch's list type is the typed client's
      async () => (await this.o.client.get("/api/v1/pods", { fieldSelector })) as any,
      false,
      undefined,
      fieldSelector,
    );
    this.lw = lw;
    const pod = (o: KubernetesObject) => o as unknown as RunPod;
    lw.on("add", (p) => this.sync(pod(p)));
    lw.on("update", (p) => this.sync(pod(p)));
    lw.on("delete", (p) => void this.remove(pod(p), false));
    lw.on("error", () => {
      if (!this.closed) setTimeout(() => lw.start().catch(() => undefined), 500);
    });
    await lw.start();
  }

  private sync(p: RunPod): void {
    if (this.closed) return;
    const uid = p.metadata.uid;
    if (p.metadata.deletionTimestamp) {
      void this.remove(p, true);
      return;
    }
    const have = this.sandboxes.get(uid);
    if (have) {
      have.pod = p;
      return;
    }
    if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") return;
    const sb = new PodSandbox(p, this.ctx);
    this.sandboxes.set(uid, sb);
    sb.start().catch(() => undefined); // reported in the pod's status
  }

  private remove(p: RunPod, deleteFromApi: boolean): Promise<void> {
    const uid = p.metadata.uid;
    const have = this.stopping.get(uid);
    if (have) return have;
    const sb = this.sandboxes.get(uid);
    const done = (async () => {
      if (sb) await sb.stop(p.metadata.deletionGracePeriodSeconds);
      this.sandboxes.delete(uid);
      if (deleteFromApi && !this.closed) {
        await this.o.client
          .request({
            method: "DELETE",
            path: `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`,
            body: { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0, preconditions: { uid } },
          })
          .catch(() => undefined);
      }
    })();
    this.stopping.set(uid, done);
    return done;
  }

  /** Rewrites every pod's /etc/hosts (Services changed). */
  refreshHosts(): void {
    for (const sb of this.sandboxes.values()) sb.writeHosts();
  }

  /** Stops watching and every pod. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.lw?.stop().catch(() => undefined);
    await Promise.all([...this.sandboxes.values()].map((s) => s.stop()));
    await Promise.all(this.stopping.values());
  }
}

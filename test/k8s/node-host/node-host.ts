// The test node host: stands in for kubelet + a container runtime +
// kube-proxy on N test nodes, each its own network namespace on a shared
// fabric bridge that also reaches the API server (on the host's end of a
// veth). Used only by the test/k8s tier.
//
//   const net = await TestFabric.create(2);
//   const cluster = await startCluster({ bindAddress: net.layout.hostIp });
//   const host = new NodeHost({ fabric: net, kubeconfigPath: cluster.kubeconfigPath });
//   await host.start();   // Nodes registered and Ready, podCIDRs routed
//   ...
//   await host.close(); await cluster.stop(); await net.destroy();
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { type KubernetesObject, ListWatch, Watch } from "@kubernetes/client-node";
import { isNotFound, KubeClient } from "../../../controller/provider/kube/client.js";
import type { EndpointSlice, Service } from "../../../controller/provider/objects.js";
import { applySteps, killNetnsProcesses, listNetns } from "../../../local/network.js";
import { runCommand } from "../../../ztunnel/node-agent/command.js";
import { runProcess } from "./cni.js";
import {
  type FabricLayout,
  fabricLayout,
  type NodeNetLayout,
  nodeNetLayout,
  planFabric,
  planNode,
  planNodeRoutes,
  planTeardown,
} from "./node-network.js";
import { NodeView } from "./node-view.js";
import type { PodSandbox } from "./pod-sandbox.js";
import { hostsFile, serviceRules, serviceScript } from "./service-proxy.js";
import { TestNode } from "./test-node.js";
import type { VolumeApi } from "./volumes.js";

const STATE_DIR = "/var/lib/ambit-test";

/** The fabric: host veth + bridge namespace, made before the API server starts (it binds the host's end). */
export class TestFabric {
  private constructor(
    readonly layout: FabricLayout,
    readonly nodes: NodeNetLayout[],
    readonly root: string,
  ) {}

  static async create(nodeCount: number): Promise<TestFabric> {
    const id = randomBytes(3).toString("hex");
    // A /24 no route of this host uses yet.
    const { stdout } = await runCommand(["ip", "-4", "route"]);
    let subnet = 0;
    for (let tries = 0; tries < 50; tries++) {
      const s = 1 + Math.floor(Math.random() * 250);
      if (!stdout.includes(`10.211.${s}.`)) {
        subnet = s;
        break;
      }
    }
    if (!subnet) throw new Error("no free 10.211.x.0/24 for the test fabric");
    const layout = fabricLayout(id, subnet);
    const nodes = Array.from({ length: nodeCount }, (_, i) => nodeNetLayout(layout, `node${i + 1}`, i));
    // Not under /tmp: containers mount emptyDirs there, which would hide the
    // sources of later binds (volumes, /etc/hosts) in their mount namespace.
    fs.mkdirSync(STATE_DIR, { recursive: true });
    const root = fs.mkdtempSync(path.join(STATE_DIR, `ambit-t${id}-`));
    const f = new TestFabric(layout, nodes, root);
    fs.mkdirSync("/var/run/netns", { recursive: true });
    try {
      await applySteps(planFabric(layout));
      for (const n of nodes) await applySteps(planNode(layout, n));
    } catch (e) {
      await f.destroy();
      throw e;
    }
    return f;
  }

  /** Ends every process in the namespaces and removes them, the host veth and the files. */
  async destroy(): Promise<void> {
    const names = listNetns(this.layout.prefix);
    await killNetnsProcesses(names, 2000);
    await applySteps(planTeardown(this.layout, names)).catch(() => undefined);
    NodeView.removeMountPoints();
    fs.rmSync(this.root, { recursive: true, force: true });
    try {
      fs.rmdirSync(STATE_DIR);
    } catch {
      // another run's directory is still there
    }
  }
}

export interface NodeHostOptions {
  fabric: TestFabric;
  kubeconfigPath: string;
  /** The controller manager's --cluster-cidr (default 10.244.0.0/16). */
  clusterCidr?: string;
  /** The API server's --service-cluster-ip-range (default 10.96.0.0/16). */
  serviceCidr?: string;
  /** Upper bound on pods' termination grace (default 10 s), so teardown stays quick. */
  maxGraceMs?: number;
}

export class NodeHost {
  readonly client: KubeClient;
  readonly nodes: TestNode[] = [];
  private services?: ListWatch<KubernetesObject>;
  private slices?: ListWatch<KubernetesObject>;
  private proxyTimer?: NodeJS.Timeout;
  private proxyChain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly o: NodeHostOptions) {
    this.client = KubeClient.fromSource({ kubeconfigPath: o.kubeconfigPath });
  }

  get fabric(): TestFabric {
    return this.o.fabric;
  }

  /** Registers every node, waits for their podCIDRs, routes them, and starts running pods and Services. */
  async start(): Promise<void> {
    const f = this.o.fabric;
    const volumeApi = this.volumeApi();
    for (const n of f.nodes) {
      const view = new NodeView(path.join(f.root, n.name));
      const node = new TestNode({
        name: n.name,
        netnsPath: n.netnsPath,
        netnsPrefix: f.layout.prefix,
        ip: n.ip,
        view,
        client: this.client,
        context: {
          volumeApi,
          apiServiceIp: () =>
            (this.services?.get("kubernetes", "default") as Service | undefined)?.spec.clusterIP,
          hostsFor: (pod) => hostsFile(pod, this.serviceList()),
          podsDir: path.join(f.root, n.name, "pods"),
          maxGraceMs: this.o.maxGraceMs ?? 10_000,
        },
      });
      this.nodes.push(node);
    }
    await Promise.all(this.nodes.map((n) => n.register()));
    await Promise.all(this.nodes.map((n) => n.waitPodCidr()));
    const clusterCidr = this.o.clusterCidr ?? "10.244.0.0/16";
    for (const [i, n] of this.nodes.entries()) {
      const others = this.nodes.filter((o) => o !== n).map((o) => ({ ip: o.ip, podCidr: o.podCidr! }));
      await applySteps(
        planNodeRoutes(f.nodes[i]!, n.podCidr!, clusterCidr, this.o.serviceCidr ?? "10.96.0.0/16", others),
      );
      n.writeCniConfig();
    }
    await this.startServiceProxy();
    await Promise.all(this.nodes.map((n) => n.start()));
  }

  private volumeApi(): VolumeApi {
    const c = this.client;
    const getData = async (p: string, b64: boolean) => {
      try {
        const o = await c.get<{ data?: Record<string, string> }>(p);
        const data = o.data ?? {};
        return b64
          ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]))
          : data;
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    };
    return {
      configMap: (ns, name) => getData(`/api/v1/namespaces/${ns}/configmaps/${name}`, false),
      secret: (ns, name) => getData(`/api/v1/namespaces/${ns}/secrets/${name}`, true),
      token: async (ns, sa, audience, expirationSeconds, pod) => {
        const r = await c.request<{ status: { token: string } }>({
          method: "POST",
          path: `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: {
              ...(audience ? { audiences: [audience] } : {}),
              expirationSeconds,
              boundObjectRef: { kind: "Pod", apiVersion: "v1", name: pod.name, uid: pod.uid },
            },
          },
        });
        return r.status.token;
      },
    };
  }

  private async startServiceProxy(): Promise<void> {
    const watch = new Watch(this.client.config);
    const mk = (p: string) => {
      const lw = new ListWatch<KubernetesObject>(
        p,
        watch,
        // biome-ignore lint/suspicious/noExplicitAny: ListWatch's list type is the typed client's
        async () => (await this.client.get(p)) as any,
        false,
      );
      lw.on("change", () => this.scheduleProxy());
      lw.on("error", () => {
        if (!this.closed) setTimeout(() => lw.start().catch(() => undefined), 500);
      });
      return lw;
    };
    this.services = mk("/api/v1/services");
    this.slices = mk("/apis/discovery.k8s.io/v1/endpointslices");
    await Promise.all([this.services!.start(), this.slices!.start()]);
    await this.applyProxy();
  }

  private serviceList(): Service[] {
    return [...(this.services?.list() ?? [])] as unknown as Service[];
  }

  private scheduleProxy(): void {
    if (this.proxyTimer || this.closed) return;
    this.proxyTimer = setTimeout(() => {
      this.proxyTimer = undefined;
      void this.applyProxy();
    }, 50);
  }

  /** Services → iptables in every node namespace, and every pod's /etc/hosts. */
  private applyProxy(): Promise<void> {
    this.proxyChain = this.proxyChain.then(async () => {
      if (this.closed) return;
      const slices = [...(this.slices?.list() ?? [])] as unknown as EndpointSlice[];
      const rules = serviceRules(this.serviceList(), slices);
      const script = serviceScript(rules);
      await Promise.all(
        this.o.fabric.nodes.map((n) =>
          applySteps([["nsenter", `--net=${n.netnsPath}`, "sh", "-ec", script]]).catch(() => undefined),
        ),
      );
      for (const n of this.nodes) n.refreshHosts();
    });
    return this.proxyChain;
  }

  /** The running pod (its sandbox) by namespace and name. */
  pod(namespace: string, name: string): PodSandbox | undefined {
    for (const n of this.nodes)
      for (const p of n.pods())
        if (p.pod.metadata.namespace === namespace && p.pod.metadata.name === name) return p;
    return undefined;
  }

  /** Runs argv in the pod's network namespace and its (first) container's mount view, like `kubectl exec`. */
  async exec(
    namespace: string,
    name: string,
    argv: string[],
    opts: { timeoutMs?: number; container?: string } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const sb = this.pod(namespace, name);
    if (!sb?.netnsPath) throw new Error(`pod ${namespace}/${name} is not running on a test node`);
    return runProcess(sb.wrap(argv, opts.container), process.env, "", opts.timeoutMs ?? 30_000);
  }

  /** Runs argv in a node's network namespace and file system view (what a host-network pod sees). */
  async execOnNode(
    node: string,
    argv: string[],
    timeoutMs = 30_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const n = this.nodes.find((x) => x.name === node);
    if (!n) throw new Error(`no test node ${node}`);
    return runProcess(
      ["nsenter", `--net=${n.netnsPath}`, "--", ...n.view.wrap(argv)],
      process.env,
      "",
      timeoutMs,
    );
  }

  /** A container's log (stdout and stderr, all restarts) of a pod on a test node; "" when none. */
  logs(namespace: string, name: string, container: string): string {
    const sb = this.pod(namespace, name);
    if (!sb) return "";
    try {
      return fs.readFileSync(path.join(sb.logDir, `${container}.log`), "utf8");
    } catch {
      return "";
    }
  }

  /** Every pod's log tails, for a failing test's diagnostics. */
  logTails(lines = 30): string {
    const out: string[] = [];
    for (const n of this.nodes)
      for (const p of n.pods()) {
        let files: string[] = [];
        try {
          files = fs.readdirSync(p.logDir);
        } catch {
          continue;
        }
        for (const f of files) {
          const text = fs.readFileSync(path.join(p.logDir, f), "utf8").split("\n").slice(-lines).join("\n");
          out.push(`--- ${n.name} ${p.key} ${f}\n${text}`);
        }
      }
    return out.join("\n");
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.proxyTimer);
    await Promise.all(this.nodes.map((n) => n.close()));
    await this.services?.stop().catch(() => undefined);
    await this.slices?.stop().catch(() => undefined);
    await this.proxyChain;
  }
}

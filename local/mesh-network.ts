// The live network of one local mesh: creates it from a plan, adds and
// removes pods while it runs, destroys it. Stateless across processes: the
// layout and pods it returns are what `state.ts` records, and `attach`
// rebuilds the object from them in another process (`ambit down`, `exec`).
import fs from "node:fs";
import { AmbitError } from "../core/errors/errors.js";
import { requireNetnsPrivileges } from "../ztunnel/node-agent/native.js";
import {
  allocatePodIp,
  applySteps,
  destroyMeshNetwork,
  killNetnsProcesses,
  listNetns,
  type MeshLayout,
  type MeshNetworkSpec,
  meshLayout,
  nodeOf,
  type PodNetwork,
  planMeshNetwork,
  planPodNetwork,
  planPodRemoval,
  podNetwork,
} from "./network.js";

export class MeshNetwork {
  private readonly podsByKey = new Map<string, PodNetwork>();

  private constructor(readonly layout: MeshLayout) {}

  /**
   * Builds the fabric, control plane and node namespaces. Refuses when
   * namespaces of this mesh id exist, unless `replace` (then removes them
   * first). On failure, removes whatever it created.
   */
  static async create(spec: MeshNetworkSpec, opts: { replace?: boolean } = {}): Promise<MeshNetwork> {
    requireNetnsPrivileges("a local mesh");
    const layout = meshLayout(spec);
    const existing = listNetns(layout.prefix);
    if (existing.length > 0) {
      if (!opts.replace) {
        throw new AmbitError(
          "LOCAL_STATE",
          `mesh ${spec.meshId} already exists (namespaces ${existing.slice(0, 3).join(", ")}${existing.length > 3 ? ", ..." : ""}); run 'ambit down' first`,
        );
      }
      await destroyMeshNetwork(spec.meshId);
    }
    fs.mkdirSync("/var/run/netns", { recursive: true });
    try {
      await applySteps(planMeshNetwork(layout));
    } catch (err) {
      await destroyMeshNetwork(spec.meshId).catch(() => undefined);
      throw err;
    }
    return new MeshNetwork(layout);
  }

  /** The network of a mesh made by another process (from its state file). */
  static attach(layout: MeshLayout, pods: PodNetwork[] = []): MeshNetwork {
    const m = new MeshNetwork(layout);
    for (const p of pods) m.podsByKey.set(p.key, p);
    return m;
  }

  pods(): PodNetwork[] {
    return [...this.podsByKey.values()];
  }

  pod(key: string): PodNetwork | undefined {
    return this.podsByKey.get(key);
  }

  /**
   * Gives the pod a namespace on its node, with the requested IP or the
   * lowest free one. A pod already present is returned as it is.
   */
  async addPod(pod: { key: string; node: string; ip?: string }): Promise<PodNetwork> {
    const have = this.podsByKey.get(pod.key);
    if (have) {
      if (have.node !== pod.node) {
        throw new AmbitError(
          "INVALID_FIELD",
          `pod ${pod.key}: already on node ${have.node}, asked for ${pod.node}`,
        );
      }
      return have;
    }
    const node = nodeOf(this.layout, pod.node);
    const used = [...this.podsByKey.values()].filter((p) => p.node === node.name).map((p) => p.ip);
    if (pod.ip && used.includes(pod.ip)) {
      throw new AmbitError(
        "DUPLICATE_OBJECT",
        `pod ${pod.key}: ip ${pod.ip} is already used on node ${node.name}`,
      );
    }
    const net = podNetwork(this.layout, {
      key: pod.key,
      node: node.name,
      ip: pod.ip ?? allocatePodIp(node, used),
    });
    // Reserve the address before the await so concurrent adds do not collide.
    this.podsByKey.set(pod.key, net);
    try {
      if (listNetns(net.netns).includes(net.netns)) await applySteps(planPodRemoval(net));
      await applySteps(planPodNetwork(this.layout, net));
    } catch (err) {
      this.podsByKey.delete(pod.key);
      await applySteps(planPodRemoval(net)).catch(() => undefined);
      throw err;
    }
    return net;
  }

  /** Ends the processes in the pod's namespace and removes it. Unknown keys are fine. */
  async removePod(key: string, opts: { graceMs?: number } = {}): Promise<void> {
    const net = this.podsByKey.get(key);
    if (!net) return;
    await killNetnsProcesses([net.netns], opts.graceMs ?? 3000);
    if (listNetns(net.netns).includes(net.netns)) await applySteps(planPodRemoval(net));
    this.podsByKey.delete(key);
  }

  /** Removes every namespace of the mesh (and the processes in them). */
  async destroy(opts: { graceMs?: number } = {}): Promise<string[]> {
    const removed = await destroyMeshNetwork(this.layout.meshId, opts);
    this.podsByKey.clear();
    return removed;
  }
}

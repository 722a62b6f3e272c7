// `ambit upgrade` in the local mesh: every node's ztunnel is replaced by a
// new process without dropping a connection. Per node, one at a time:
//   1. the new ztunnel starts as another pod of the node (host network); it
//      opens its listeners in each enrolled pod alongside the old one's
//      (SO_REUSEPORT) and becomes ready (its own readiness port: the old one
//      still holds the usual one);
//   2. the old one gets SIGTERM: it stops accepting (connections queued on
//      its sockets move to the new one's, tcp_migrate_req), sends GOAWAY on
//      its HBONE sessions and carries its established connections until they
//      end, then exits 0 (its pod completes and is removed);
//   3. at the drain deadline a ztunnel still draining is stopped.
// The CLI asks for it with a request file and SIGUSR2 to the supervisor, and
// follows `extra.upgrade` in the state file; `extra.ztunnels` says which pod
// is each node's current ztunnel and which ones drain (for `ambit status`).
import fs from "node:fs";
import path from "node:path";
import type { LocalRuntime } from "./runtime.js";
import { stateDir } from "./state.js";
import { type ComponentContext, ztunnelContainer } from "./supervisor-components.js";
import { COMPONENT_PORTS, ztunnelKey } from "./supervisor-plan.js";

/** What `ambit upgrade` writes next to the state file before signalling the supervisor. */
export interface UpgradeRequest {
  id: string;
  drainSeconds: number;
}

export type NodeUpgradePhase = "waiting" | "starting" | "draining" | "drained" | "stopped" | "failed";

/** `extra.upgrade` in the state file. */
export interface UpgradeStatus {
  id: string;
  /** "handed-over": every node runs its new ztunnel; old ones may still drain. */
  phase: "running" | "handed-over" | "done" | "failed";
  drainSeconds: number;
  startedAt: string;
  nodes: Record<string, { from: string; to: string; phase: NodeUpgradePhase; message?: string }>;
  message?: string;
}

/** `extra.ztunnels` in the state file: each node's current ztunnel pod and the ones draining. */
export type ZtunnelPods = Record<
  string,
  { current: string; draining: { key: string; since: string; deadline: string }[] }
>;

export function upgradeRequestFile(meshId: string): string {
  return path.join(stateDir(meshId), "upgrade-request.json");
}

/** The readiness port of a node's n-th ztunnel: alternating, so a new one never waits for the old one's. */
export function ztunnelReadinessPort(generation: number): number {
  return generation % 2 === 0 ? COMPONENT_PORTS.ztunnelReadiness : COMPONENT_PORTS.ztunnelReadiness + 100;
}

/** The pod key of a node's n-th ztunnel (the first keeps the plain key). */
export function ztunnelGenerationKey(node: string, generation: number): string {
  return generation === 0 ? ztunnelKey(node) : `${ztunnelKey(node)}-u${generation}`;
}

export interface ZtunnelUpgraderHost {
  runtime: LocalRuntime;
  components(): ComponentContext;
  /** Starts a component pod. */
  runComponent(
    key: string,
    where: { node: string; hostNetwork: true },
    container: ReturnType<typeof ztunnelContainer>,
  ): Promise<void>;
  progress(line: string): void;
  /** The pod is gone for good (the supervisor drops its phase). */
  forget(key: string): void;
}

export class ZtunnelUpgrader {
  private readonly generation = new Map<string, number>();
  private readonly deadlines = new Set<NodeJS.Timeout>();
  private status: UpgradeStatus | undefined;
  private pods: ZtunnelPods = {};
  private busy = false;

  constructor(private readonly host: ZtunnelUpgraderHost) {
    const { runtime } = host;
    for (const n of runtime.layout.nodes) this.pods[n.name] = { current: ztunnelKey(n.name), draining: [] };
    this.publish(undefined);
    // A drained ztunnel exits 0; its pod (restartPolicy Always, as every
    // component's) is stopped from inside the exit event, which cancels the restart.
    runtime.on("pod-exit", (e: { key: string }) => this.onExit(e.key));
  }

  /** The component pod of each node's current ztunnel. */
  currentKey(node: string): string {
    return this.pods[node]?.current ?? ztunnelKey(node);
  }

  /** Reads the request the CLI wrote and runs it; refused while a previous upgrade still drains. */
  async fromRequestFile(meshId: string): Promise<void> {
    let req: UpgradeRequest;
    try {
      req = JSON.parse(fs.readFileSync(upgradeRequestFile(meshId), "utf8")) as UpgradeRequest;
    } catch (e) {
      this.host.progress(`upgrade: no readable request (${(e as Error).message})`);
      return;
    }
    await this.upgrade(req);
  }

  async upgrade(req: UpgradeRequest): Promise<void> {
    const nodes = this.host.runtime.layout.nodes.map((n) => n.name);
    const draining = nodes.filter((n) => (this.pods[n]?.draining.length ?? 0) > 0);
    if (this.busy || draining.length > 0) {
      this.publish({
        id: req.id,
        phase: "failed",
        drainSeconds: req.drainSeconds,
        startedAt: new Date().toISOString(),
        nodes: {},
        message: this.busy
          ? "an upgrade is running"
          : `the previous upgrade still drains on ${draining.join(", ")}; try again once it is done`,
      });
      return;
    }
    this.busy = true;
    const status: UpgradeStatus = {
      id: req.id,
      phase: "running",
      drainSeconds: req.drainSeconds,
      startedAt: new Date().toISOString(),
      nodes: Object.fromEntries(
        nodes.map((n) => {
          const gen = (this.generation.get(n) ?? 0) + 1;
          return [
            n,
            { from: this.currentKey(n), to: ztunnelGenerationKey(n, gen), phase: "waiting" as const },
          ];
        }),
      ),
    };
    this.publish(status);
    try {
      for (const node of nodes) await this.upgradeNode(node, status);
      status.phase = Object.values(status.nodes).every((n) => n.phase === "drained" || n.phase === "stopped")
        ? "done"
        : "handed-over";
      this.host.progress(`upgrade ${req.id}: every node runs its new ztunnel`);
    } catch (e) {
      status.phase = "failed";
      status.message = (e as Error).message;
      this.host.progress(`upgrade ${req.id} failed: ${status.message}`);
    } finally {
      this.busy = false;
      this.publish(status);
    }
  }

  close(): void {
    for (const t of this.deadlines) clearTimeout(t);
  }

  // ---------- internals ----------

  private async upgradeNode(node: string, status: UpgradeStatus): Promise<void> {
    const { runtime } = this.host;
    const n = status.nodes[node]!;
    const gen = (this.generation.get(node) ?? 0) + 1;
    const oldKey = n.from;
    n.phase = "starting";
    this.publish(status);
    this.host.progress(`upgrade: starting ${n.to} alongside ${oldKey}`);
    await this.host.runComponent(
      n.to,
      { node, hostNetwork: true },
      ztunnelContainer(this.host.components(), node, { readinessPort: ztunnelReadinessPort(gen) }),
    );
    await runtime.whenReady(n.to, { ms: 60_000, message: `the new ztunnel ${n.to} was not ready in 60 s` });
    this.generation.set(node, gen);
    const since = new Date();
    const deadline = new Date(since.getTime() + status.drainSeconds * 1000);
    this.pods[node] = {
      current: n.to,
      draining: [
        ...(this.pods[node]?.draining ?? []),
        { key: oldKey, since: since.toISOString(), deadline: deadline.toISOString() },
      ],
    };
    n.phase = "draining";
    this.publish(status);
    const pid = runtime.pod(oldKey)?.runner.pids().ztunnel;
    if (pid === undefined) {
      // Not running (crashed, restarting): nothing to drain.
      await this.stopOld(node, oldKey, "stopped");
      return;
    }
    this.host.progress(`upgrade: ${oldKey} (pid ${pid}) drains for up to ${status.drainSeconds} s`);
    process.kill(pid, "SIGTERM");
    const timer = setTimeout(() => {
      this.deadlines.delete(timer);
      if (runtime.pod(oldKey)) {
        this.host.progress(`upgrade: ${oldKey} still drains at the deadline: stopping it`);
        void this.stopOld(node, oldKey, "stopped");
      }
    }, status.drainSeconds * 1000);
    timer.unref();
    this.deadlines.add(timer);
  }

  /** A draining ztunnel exited (drained, or at its own drain bound): its pod is done. */
  private onExit(key: string): void {
    for (const [node, p] of Object.entries(this.pods)) {
      if (p.draining.some((d) => d.key === key)) {
        this.host.progress(`upgrade: ${key} drained and exited`);
        void this.stopOld(node, key, "drained");
      }
    }
  }

  private async stopOld(node: string, key: string, phase: "drained" | "stopped"): Promise<void> {
    await this.host.runtime.stopPod(key);
    this.host.forget(key);
    const p = this.pods[node];
    if (p) p.draining = p.draining.filter((d) => d.key !== key);
    const s = this.status;
    const n = s?.nodes[node];
    if (s && n && n.from === key) {
      n.phase = phase;
      if (
        s.phase === "handed-over" &&
        Object.values(s.nodes).every((x) => x.phase === "drained" || x.phase === "stopped")
      )
        s.phase = "done";
    }
    this.publish(s);
  }

  private publish(status: UpgradeStatus | undefined): void {
    this.status = status;
    if (status) this.host.runtime.setExtra("upgrade", status);
    this.host.runtime.setExtra("ztunnels", this.pods);
  }
}

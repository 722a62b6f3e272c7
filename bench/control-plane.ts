// Scenario 6: N simulated ztunnels subscribed to istio.workload.Address on one
// DeltaAdsServer in a process of its own: one is the project's DeltaAdsClient
// (full decode, applying nothing), the others read only the response envelope
// and ACK (tools/envelope-subscriber.ts says why), each on its own connection,
// spread over one process per core (this one and tools/envelope-host.ts; real
// proxies take in their responses in parallel). For each size: the full set of
// pods is published and timed to the last subscriber's ACK; then one pod at a
// time changes.
import { type ChildProcess, fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { logger } from "../core/telemetry/logger.js";
import { DeltaAdsClient } from "../core/xds/client.js";
import { ADDRESS_TYPE } from "../core/xds/type-urls.js";
import type { ControlPlaneResult, ControlPlaneRun, Settings } from "./results.js";
import { EnvelopeSubscriber, ZTUNNEL_STREAM_WINDOW } from "./tools/envelope-subscriber.js";
import type { HostCommand, HostReply } from "./tools/envelope-host.js";
import type { PublishCommand, ServerReply } from "./tools/xds-server.js";

const SERVER = fileURLToPath(new URL("./tools/xds-server.js", import.meta.url));
const HOST = fileURLToPath(new URL("./tools/envelope-host.js", import.meta.url));

/** Subscriber processes (this one included): one per core, as proxies on their own nodes run in parallel. */
const SUBSCRIBER_PROCESSES = Math.max(1, Math.min(availableParallelism(), 8));

/** A process of envelope-only subscribers (tools/envelope-host.ts), one question at a time. */
class HostChild {
  private readonly child: ChildProcess;
  private waiting: ((m: HostReply | Error) => void) | undefined;
  private readonly exited: Promise<void>;

  constructor() {
    this.child = fork(HOST, [], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    this.child.on("message", (m: HostReply) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.(m);
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    this.child.once("exit", (code) => this.waiting?.(new Error(`envelope-host exited ${code}`)));
  }

  ask<T extends HostReply["type"]>(cmd: HostCommand, expect: T, timeoutMs = 120_000) {
    return new Promise<Extract<HostReply, { type: T }>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("envelope-host: no answer in time")), timeoutMs);
      this.waiting = (m) => {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else if (m.type === "error") reject(new Error(`envelope-host: ${m.message}`));
        else if (m.type !== expect) reject(new Error(`envelope-host: ${m.type}, expected ${expect}`));
        else resolve(m as Extract<HostReply, { type: T }>);
      };
      this.child.send(cmd);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.child.send({ cmd: "stop" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

class ServerChild {
  private readonly child: ChildProcess;
  private waiting: ((m: ServerReply) => void) | undefined;
  private readonly exited: Promise<void>;

  constructor() {
    this.child = fork(SERVER, [], {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      env: { ...process.env, AMBIT_LOG_LEVEL: "warn" },
    });
    this.child.on("message", (m: ServerReply) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.(m);
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    this.child.once("exit", (code) => this.failWaiting?.(new Error(`xds-server exited ${code}`)));
  }

  private failWaiting: ((err: Error) => void) | undefined;

  next(timeoutMs = 120_000): Promise<ServerReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("xds-server: no answer in time")), timeoutMs);
      this.failWaiting = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      this.waiting = (m) => {
        clearTimeout(timer);
        this.failWaiting = undefined;
        if (m.type === "error") reject(new Error(`xds-server: ${m.message}`));
        else resolve(m);
      };
    });
  }

  /** Publishes and waits for every ACK; the CPU times are the server's and this (subscribers') process's. */
  async publish(
    cmd: Omit<PublishCommand, "cmd">,
  ): Promise<{ ms: number; rssMB: number; cpuMs: number; subscribersCpuMs: number }> {
    const cpu0 = process.cpuUsage();
    const reply = this.next();
    this.child.send({ cmd: "publish", ...cmd });
    const m = await reply;
    if (m.type !== "published") throw new Error(`xds-server: unexpected ${m.type}`);
    const cpu = process.cpuUsage(cpu0);
    return { ...m, subscribersCpuMs: (cpu.user + cpu.system) / 1000 };
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.child.send({ cmd: "stop" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : Number.NaN;
};

export async function runControlPlane(
  s: Settings["controlPlane"],
  log: (m: string) => void,
): Promise<ControlPlaneResult> {
  const server = new ServerChild();
  const clients: DeltaAdsClient[] = [];
  const envelopes: EnvelopeSubscriber[] = [];
  const hosts = Array.from(
    { length: Math.min(SUBSCRIBER_PROCESSES, s.subscribers) - 1 },
    () => new HostChild(),
  );
  const hostNodes = hosts.map(() => [] as { id: string; name: string }[]);
  try {
    const hello = await server.next(30_000);
    if (hello.type !== "listening") throw new Error(`xds-server: unexpected ${hello.type}`);
    const quiet = logger("bench.xds-client");
    quiet.level = "error";
    const address = `127.0.0.1:${hello.port}`;
    for (let i = 0; i < s.subscribers; i++) {
      const nodeId = `ztunnel~10.0.0.${i}~bench-zt-${i}~cluster.local`;
      if (i > 0) {
        // Spread over this process and the hosts, round robin.
        const p = i % (hosts.length + 1);
        if (p === 0) envelopes.push(new EnvelopeSubscriber(address, nodeId, `node-${i}`, ADDRESS_TYPE));
        else hostNodes[p - 1]?.push({ id: nodeId, name: `node-${i}` });
        continue;
      }
      const c = new DeltaAdsClient({
        address,
        node: { id: nodeId, metadata: { NODE_NAME: `node-${i}` } },
        handlers: [{ typeUrl: ADDRESS_TYPE, apply: () => undefined }],
        // The windows a ztunnel advertises (DeltaAdsClient's own default is larger).
        channelOptions: { "grpc-node.flow_control_window": ZTUNNEL_STREAM_WINDOW },
        logger: quiet,
      });
      clients.push(c);
      c.start();
    }
    await Promise.all([
      ...clients.map((c) => c.ready()),
      ...envelopes.map((e) => e.ready()),
      ...hosts.map((h, i) =>
        h.ask({ cmd: "start", address, typeUrl: ADDRESS_TYPE, nodes: hostNodes[i] ?? [] }, "ready"),
      ),
    ]);
    const held = async () => [
      ...clients.map((c) => c.state().perType[ADDRESS_TYPE]?.resources ?? -1),
      ...envelopes.map((e) => e.resources),
      ...(await Promise.all(hosts.map((h) => h.ask({ cmd: "held" }, "held")))).flatMap((r) => r.held),
    ];
    const hostsCpuMs = async () =>
      (await Promise.all(hosts.map((h) => h.ask({ cmd: "cpu" }, "cpu")))).reduce((a, r) => a + r.cpuMs, 0);
    const publish = async (cmd: Omit<PublishCommand, "cmd">) => {
      const before = await hostsCpuMs();
      const r = await server.publish(cmd);
      return { ...r, subscribersCpuMs: r.subscribersCpuMs + (await hostsCpuMs()) - before };
    };
    const runs: ControlPlaneRun[] = [];
    for (const pods of s.pods) {
      await publish({ pods: 0, subscribers: s.subscribers, generation: 0 });
      if (clients.some((c) => (c.state().perType[ADDRESS_TYPE]?.resources ?? -1) !== 0))
        throw new Error("the full subscriber still holds pods after publishing none");
      for (const e of envelopes) e.resetCount();
      await Promise.all(hosts.map((h) => h.ask({ cmd: "reset" }, "reset")));
      const full = await publish({ pods, subscribers: s.subscribers, generation: 0 });
      const counts = await held();
      if (counts.length !== s.subscribers)
        throw new Error(`${counts.length} subscribers, not ${s.subscribers}`);
      const wrong = counts.filter((n) => n !== pods).length;
      if (wrong) throw new Error(`${wrong} subscriber(s) do not hold ${pods} pods after the push`);
      const inc: number[] = [];
      const incCpu: number[] = [];
      let rssMB = full.rssMB;
      for (let g = 1; g <= s.incrementalChanges; g++) {
        const r = await publish({ pods, subscribers: s.subscribers, generation: g });
        inc.push(r.ms);
        incCpu.push(r.cpuMs);
        rssMB = Math.max(rssMB, r.rssMB);
      }
      runs.push({
        pods,
        subscribers: s.subscribers,
        fullPushMs: full.ms,
        incrementalP50Ms: median(inc),
        incrementalMaxMs: Math.max(...inc),
        serverRssMB: rssMB,
      });
      log(
        `  control plane ${pods} pods × ${s.subscribers}: full ${full.ms.toFixed(1)} ms (CPU: server ${full.cpuMs.toFixed(0)} ms, subscribers ${full.subscribersCpuMs.toFixed(0)} ms), one-pod p50 ${median(inc).toFixed(1)} ms (server CPU p50 ${median(incCpu).toFixed(1)} ms)`,
      );
    }
    return { status: "measured", runs };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    for (const e of envelopes) e.close();
    await Promise.all(hosts.map((h) => h.close()));
    await server.close();
  }
}

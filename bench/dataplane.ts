// Scenarios 1–5 for one peer, in the same topology as every other peer:
// latency at a fixed rate (and the cost at that rate), saturation, gRPC and
// HTTP/2, bulk TCP, idle connections and connection setup rate.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ScenarioName } from "./config.js";
import { fortioGrpc, fortioHttp, h2load, iperf, wrk } from "./load.js";
import type { Peer, PeerRuntime } from "./peers/types.js";
import { type BenchResults, type ScaleResult, sumCost } from "./results.js";
import { rssMB, UsageSampler } from "./sampler.js";
import type { Topology } from "./topology.js";

export interface DataplaneEnv {
  topo: Topology;
  fortio: string;
  results: BenchResults;
  scenarios: Set<ScenarioName>;
  log: (msg: string) => void;
}

async function step<T>(
  env: DataplaneEnv,
  peer: Peer,
  scenario: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  const t0 = Date.now();
  try {
    const r = await fn();
    env.log(`  ${peer.name} ${scenario}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    return r;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    env.log(`  ${peer.name} ${scenario}: FAILED ${message.split("\n")[0]}`);
    env.results.errors.push({ peer: peer.name, scenario, message: message.slice(0, 2000) });
    return undefined;
  }
}

export async function runDataplane(env: DataplaneEnv, peer: Peer, rt: PeerRuntime): Promise<void> {
  const { topo, fortio, results } = env;
  const s = results.settings;
  const client = topo.clientPod.netns;
  const t = rt.targets;

  if (env.scenarios.has("latency")) {
    await step(env, peer, "latency", async () => {
      // Warm-up at the same rate: pools, TLS sessions and the JIT settle before measuring.
      const warm = Math.min(5, Math.max(1, Math.round(s.latency.durationSec / 12)));
      await fortioHttp(client, fortio, t.http, { ...s.latency, durationSec: warm });
      const sampler = new UsageSampler(rt.measured);
      sampler.start();
      const run = await fortioHttp(client, fortio, t.http, s.latency);
      results.latency[peer.name] = { ...run, cost: sumCost(sampler.stop()) };
    });
  }

  if (env.scenarios.has("saturation")) {
    const sat = results.saturation[peer.name] ?? {};
    results.saturation[peer.name] = sat;
    const w = s.saturation;
    await step(env, peer, "wrk keep-alive", async () => {
      const sampler = new UsageSampler(rt.measured);
      sampler.start();
      sat.keepAlive = await wrk(client, t.http, { ...w, newConnection: false });
      sat.keepAliveCost = sumCost(sampler.stop());
    });
    await step(env, peer, "wrk new connection", async () => {
      sat.newConnection = await wrk(client, t.http, { ...w, newConnection: true });
    });
    if (!peer.l7) {
      await step(env, peer, "tcp 1 stream", async () => {
        sat.tcp1MBps = await iperf(client, t.iperf, { streams: 1, durationSec: w.tcpDurationSec });
      });
      await step(env, peer, "tcp 8 streams", async () => {
        sat.tcp8MBps = await iperf(client, t.iperf, { streams: 8, durationSec: w.tcpDurationSec });
      });
    }
  }

  if (env.scenarios.has("grpc")) {
    await step(env, peer, "grpc", async () => {
      const g = s.grpc;
      const unary = await fortioGrpc(client, fortio, t.grpc, {
        requests: g.requests,
        connections: g.connections,
        streamsPerConnection: g.streamsPerConnection,
        payloadBytes: 1024,
      });
      const h2 = await h2load(client, t.http, {
        requests: g.h2Requests,
        connections: g.connections,
        streams: g.streamsPerConnection,
      });
      results.grpc[peer.name] = { unary, h2 };
    });
  }

  if (env.scenarios.has("scale") && !peer.l7) {
    await step(env, peer, "idle connections", async () => {
      results.scale[peer.name] = await idleConnections(env, peer, rt);
    });
  }
}

const IDLE_TOOL = fileURLToPath(new URL("./tools/idle-conns.js", import.meta.url));

/** Opens N idle tunnelled connections from the client pod and reads the proxies' RSS while they are held. */
async function idleConnections(env: DataplaneEnv, peer: Peer, rt: PeerRuntime): Promise<ScaleResult> {
  const { setupConcurrency } = env.results.settings.scale;
  const n = Math.min(
    env.results.settings.scale.idleConnections,
    peer.maxConnections ?? Number.POSITIVE_INFINITY,
  );
  const sumRss = () => rt.measured.reduce((a, p) => a + rssMB(p.pid), 0);
  const rssBeforeMB = sumRss();
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      env.topo.clientPod.netns,
      process.execPath,
      IDLE_TOOL,
      rt.targets.tcpEcho.ip,
      String(rt.targets.tcpEcho.port),
      String(n),
      String(setupConcurrency),
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once("line", resolve);
      child.once("exit", (code) =>
        reject(new Error(`idle-conns exited ${code}: ${stderr.trim().slice(-500)}`)),
      );
    });
    const r = JSON.parse(line) as { opened: number; errors: number; setupRate: number };
    // Memory settles after the last handshake (buffers released, GC): sample a few times and keep the max.
    let rssIdleMB = sumRss();
    for (let i = 0; i < 4; i++) {
      await new Promise((res) => setTimeout(res, 250));
      rssIdleMB = Math.max(rssIdleMB, sumRss());
    }
    return {
      requested: n,
      opened: r.opened,
      errors: r.errors,
      setupRate: r.setupRate,
      rssBeforeMB,
      rssIdleMB,
    };
  } finally {
    child.stdin.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

// The soak runs' mesh: the benchmark's topology (two nodes, a client pod and a
// server pod, local/mesh-network.ts), ambit's controller and one ztunnel per
// node as separate processes (as `ambit up` runs them, so each ztunnel's RSS
// is its own), and a TCP echo server in the server pod. Used by
// test/netns/soak-10k.test.ts and `npm run soak` (bench/soak.ts).
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { findRepoRoot } from "./config.js";
import { counterSum, httpGetIn, PLAIN_NODE, startAmbitProcesses } from "./peers/ambit.js";
import { APP_PORTS } from "./peers/types.js";
import { Proc, run } from "./procs.js";
import { rssMB } from "./sampler.js";
import { applyTopology, planTopology, removeTopology, type Topology } from "./topology.js";

export const ECHO_SERVER = fileURLToPath(new URL("./tools/echo-server.js", import.meta.url));
export const HELD_CONNS = fileURLToPath(new URL("./tools/held-conns.js", import.meta.url));

export interface SoakZtunnel {
  node: string;
  netns: string;
  pid: number;
}

export interface SoakMesh {
  topo: Topology;
  workDir: string;
  fortio: string;
  ztunnels: SoakZtunnel[];
  echo: { ip: string; port: number };
  /** RSS of each ztunnel (MB), by node. */
  rss(): Record<string, number>;
  /** Open file descriptors of each ztunnel, by node. */
  fds(): Record<string, number>;
  /** istio_tcp_connections_opened_total (all label sets) of each ztunnel, by node. */
  connectionsOpened(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** fortio (the readiness probe inside namespaces), built once and cached by the benchmark's script. */
export async function ensureFortio(): Promise<string> {
  const r = await run("bash", [join(findRepoRoot(), "scripts/build-fortio.sh")], { timeoutMs: 900_000 });
  const path = r.stdout.trim().split("\n").pop();
  if (!path) throw new Error("scripts/build-fortio.sh printed no fortio path");
  return path;
}

/** Builds the mesh named `meshId` (ambit-<meshId>-*) and starts everything; on failure removes it all. */
export async function startSoakMesh(meshId: string, log: (m: string) => void): Promise<SoakMesh> {
  const fortio = await ensureFortio();
  const topo = planTopology(meshId);
  const workDir = mkdtempSync(join(tmpdir(), topo.prefix));
  const closers: (() => Promise<void>)[] = [
    async () => {
      await removeTopology(meshId);
    },
    async () => rmSync(workDir, { recursive: true, force: true }),
  ];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    await applyTopology(topo);
    log(`topology ${topo.prefix}* (work dir ${workDir})`);
    const echoProc = Proc.start(
      "echo-server",
      topo.serverPod.netns,
      PLAIN_NODE[0],
      [...PLAIN_NODE.slice(1), ECHO_SERVER, String(APP_PORTS.tcpEcho)],
      join(workDir, "echo-server.log"),
    );
    closers.push(() => echoProc.close());
    const ambit = await startAmbitProcesses({ topo, workDir, fortio });
    closers.push(() => ambit.close());
    const ztunnels = ambit.ztunnels.map((z) => ({ node: z.node, netns: z.netns, pid: z.proc.pid }));
    const byNode = <T>(f: (z: SoakZtunnel) => T) =>
      Object.fromEntries(ztunnels.map((z) => [z.node, f(z)])) as Record<string, T>;
    return {
      topo,
      workDir,
      fortio,
      ztunnels,
      echo: { ip: topo.serverPod.ip, port: APP_PORTS.tcpEcho },
      rss: () => byNode((z) => rssMB(z.pid)),
      fds: () => byNode((z) => openFds(z.pid)),
      connectionsOpened: async () => {
        const out: Record<string, number> = {};
        for (const z of ztunnels) {
          const text = await httpGetIn(z.netns, fortio, "http://127.0.0.1:15020/metrics");
          out[z.node] = counterSum(text, "istio_tcp_connections_opened_total");
        }
        return out;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

export interface HeldConnsReport {
  phase: "opened" | "holding" | "done";
  opened: number;
  setupErrors: number;
  dropped: number;
  exchanges: number;
  wrongEcho: number;
  late: number;
  held?: number;
  minExchangesPerConnection?: number;
  dropReasons?: Record<string, number>;
  setupSeconds?: number;
}

/**
 * Runs bench/tools/held-conns.js in the client pod (open file limit raised to
 * the hard limit for it), calling onLine for each report; resolves with the last.
 */
export async function runHeldConns(
  mesh: SoakMesh,
  opts: { connections: number; concurrency: number; holdSeconds: number; everySeconds: number },
  onLine: (r: HeldConnsReport) => void | Promise<void>,
): Promise<HeldConnsReport> {
  const args = [
    HELD_CONNS,
    mesh.echo.ip,
    String(mesh.echo.port),
    String(opts.connections),
    String(opts.concurrency),
    String(opts.holdSeconds),
    String(opts.everySeconds),
  ];
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      mesh.topo.clientPod.netns,
      "bash",
      "-c",
      'ulimit -n "$(ulimit -Hn)" && exec "$@"',
      "held-conns",
      ...PLAIN_NODE,
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let last: HeldConnsReport | undefined;
  const rl = createInterface({ input: child.stdout });
  const pending: Promise<void>[] = [];
  rl.on("line", (line) => {
    try {
      last = JSON.parse(line) as HeldConnsReport;
      pending.push(Promise.resolve(onLine(last)));
    } catch {
      stderr += `${line}\n`;
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  await Promise.all(pending);
  if (code !== 0 || !last || last.phase !== "done")
    throw new Error(`held-conns exited ${code}: ${stderr.trim().slice(-500)}`);
  return last;
}

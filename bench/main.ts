// `npm run bench`: builds the topology, starts the application servers in the
// server pod, measures every peer in turn on the same topology, runs the
// control-plane scenario, writes the results JSON and (full runs) rewrites
// BENCHMARKS.md with its charts. Everything it made is removed on exit,
// including on failure and Ctrl-C.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makePairCerts } from "./certs.js";
import { type BenchConfig, findRepoRoot, parseArgs, USAGE } from "./config.js";
import { runControlPlane } from "./control-plane.js";
import { runDataplane } from "./dataplane.js";
import { describeMachine } from "./machine.js";
import { allPeers } from "./peers/registry.js";
import type { Peer, PeerContext } from "./peers/types.js";
import { APP_PORTS } from "./peers/types.js";
import { Proc, run, waitForPort } from "./procs.js";
import { writeReport } from "./report-files.js";
import type { BenchResults } from "./results.js";
import { applyTopology, planTopology, randomMeshId, removeTopology } from "./topology.js";

const repoRoot = findRepoRoot();
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/** Makes sure fortio, wrk, h2load, haproxy and iperf3 are there; returns fortio's path. */
async function ensureTools(): Promise<string> {
  const r = await run("bash", [join(repoRoot, "scripts/build-fortio.sh")], { timeoutMs: 900_000 });
  const path = r.stdout.trim().split("\n").pop();
  if (!path) throw new Error("scripts/build-fortio.sh printed no fortio path");
  return path;
}

interface Owned {
  meshId?: string;
  procs: Proc[];
  closers: (() => Promise<void>)[];
  workDir?: string;
  keepWorkDir: boolean;
}
const owned: Owned = { procs: [], closers: [], keepWorkDir: false };

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of owned.closers.splice(0).reverse()) await c().catch(() => undefined);
    await Promise.all(owned.procs.splice(0).map((p) => p.close().catch(() => undefined)));
    if (owned.meshId) await removeTopology(owned.meshId).catch(() => undefined);
    if (owned.workDir && !owned.keepWorkDir) rmSync(owned.workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function startApps(ctx: PeerContext, fortio: string): Promise<void> {
  const { topo, workDir } = ctx;
  const ns = topo.serverPod.netns;
  const fortioSrv = Proc.start(
    "fortio-server",
    ns,
    fortio,
    [
      "server",
      "-loglevel",
      "Warning",
      "-http-port",
      String(APP_PORTS.http),
      "-grpc-port",
      String(APP_PORTS.grpc),
      "-tcp-port",
      String(APP_PORTS.tcpEcho),
      "-redirect-port",
      "disabled",
      "-udp-port",
      "disabled",
    ],
    join(workDir, "fortio-server.log"),
  );
  owned.procs.push(fortioSrv);
  const iperfSrv = Proc.start(
    "iperf3-server",
    ns,
    "iperf3",
    ["-s", "-p", String(APP_PORTS.iperf)],
    join(workDir, "iperf3.log"),
  );
  owned.procs.push(iperfSrv);
  await waitForPort(ns, topo.serverPod.ip, APP_PORTS.http, { proc: fortioSrv });
  await waitForPort(ns, topo.serverPod.ip, APP_PORTS.grpc, { proc: fortioSrv });
  await waitForPort(ns, topo.serverPod.ip, APP_PORTS.tcpEcho, { proc: fortioSrv });
  await waitForPort(ns, topo.serverPod.ip, APP_PORTS.iperf, { proc: iperfSrv });
}

async function measurePeer(
  peer: Peer,
  ctx: PeerContext,
  results: BenchResults,
  cfg: BenchConfig,
  fortio: string,
) {
  const reason = await peer.unavailable(ctx);
  if (reason) {
    log(`${peer.name}: not measured (${reason})`);
    results.peers.push({ name: peer.name, label: peer.label, status: "not-measured", note: reason });
    return;
  }
  log(`${peer.name}: starting`);
  let rt: Awaited<ReturnType<Peer["start"]>>;
  try {
    rt = await peer.start(ctx);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`${peer.name}: failed to start: ${message}`);
    results.peers.push({
      name: peer.name,
      label: peer.label,
      status: "failed",
      note: message.split("\n")[0],
    });
    results.errors.push({ peer: peer.name, scenario: "start", message });
    return;
  }
  const close = rt.close;
  owned.closers.push(close);
  try {
    const before = results.errors.length;
    await runDataplane({ topo: ctx.topo, fortio, results, scenarios: cfg.scenarios, log }, peer, rt);
    const failed = results.errors.length - before;
    results.peers.push({
      name: peer.name,
      label: peer.label,
      status: "measured",
      ...(failed ? { note: `${failed} step(s) failed, see errors` } : {}),
    });
  } finally {
    owned.closers.splice(owned.closers.indexOf(close), 1);
    await close();
  }
}

async function main(): Promise<number> {
  const cfg = parseArgs(process.argv.slice(2), repoRoot);
  if (cfg === "help") {
    console.log(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log("needs root (it creates network namespaces)");
    return 1;
  }
  owned.keepWorkDir = cfg.keepWorkDir;
  const startedAt = new Date();
  log(`mode ${cfg.mode}; preparing tools`);
  const fortio = await ensureTools();

  const meshId = randomMeshId();
  owned.meshId = meshId;
  const topo = planTopology(meshId);
  const workDir = mkdtempSync(join(tmpdir(), topo.prefix));
  owned.workDir = workDir;
  log(`topology ${topo.prefix}* (work dir ${workDir})`);
  const mesh = await applyTopology(topo);
  const ctx: PeerContext = { topo, workDir, certs: await makePairCerts(workDir), repoRoot, fortio, mesh };
  await startApps(ctx, fortio);

  const results: BenchResults = {
    schema: 1,
    mode: cfg.mode,
    startedAt: startedAt.toISOString(),
    finishedAt: "",
    machine: await describeMachine(fortio),
    settings: cfg.settings,
    peers: [],
    latency: {},
    saturation: {},
    grpc: {},
    scale: {},
    controlPlane: { status: "not-measured", note: "scenario not selected", runs: [] },
    errors: [],
  };

  const peers = allPeers().filter((p) => !cfg.peers || cfg.peers.includes(p.name));
  for (const peer of peers) await measurePeer(peer, ctx, results, cfg, fortio);

  if (cfg.scenarios.has("control-plane")) {
    log("control plane");
    results.controlPlane = await runControlPlane(cfg.settings.controlPlane, log).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      results.errors.push({ scenario: "control-plane", message });
      return { status: "not-measured" as const, note: `failed: ${message.split("\n")[0]}`, runs: [] };
    });
  }

  results.finishedAt = new Date().toISOString();
  mkdirSync(dirname(cfg.resultsPath), { recursive: true });
  writeFileSync(cfg.resultsPath, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${cfg.resultsPath}`);
  if (cfg.writeReport) {
    const files = writeReport(results, repoRoot);
    log(`report: ${files.join(", ")}`);
  }
  const secs = ((Date.now() - startedAt.getTime()) / 1000).toFixed(0);
  for (const e of results.errors) log(`error: ${e.peer ?? "-"} ${e.scenario}: ${e.message.split("\n")[0]}`);
  log(`done in ${secs}s: ${results.peers.map((p) => `${p.name}=${p.status}`).join(" ")}`);
  // The smoke fails when a peer that could run, or the harness itself, did not work.
  return results.errors.length ? 1 : 0;
}

main()
  .then(
    (code) => cleanup().then(() => code),
    async (err: unknown) => {
      log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      await cleanup();
      return 1;
    },
  )
  .then((code) => {
    process.exit(code);
  });

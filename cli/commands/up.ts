// `ambit up DIR`: a whole mesh on this machine from a directory of ordinary
// Kubernetes YAML. Without --foreground it starts the supervisor as a
// detached process, shows its progress, returns once every pod and ztunnel
// is ready, and leaves the mesh running (`ambit down` removes it). With
// --foreground the supervisor runs in this process: the access log is
// printed, and Ctrl-C tears the mesh down.
import { fork } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { LocalProvider } from "../../controller/provider/local/index.js";
import { AmbitError } from "../../core/errors/errors.js";
import { logger } from "../../core/telemetry/logger.js";
import { alive, validateMeshId } from "../../local/network.js";
import { validateScrapeInterval } from "../../local/observability.js";
import { readState } from "../../local/state.js";
import { defaultCliMain, MeshSupervisor, type SettledReport } from "../../local/supervisor.js";
import { type FileFollower, followAccessLogs, formatAccess } from "../../local/supervisor-logs.js";
import { DEFAULT_MESH_ID, meshPaths } from "../../local/supervisor-plan.js";
import { requireNetnsPrivileges } from "../../ztunnel/node-agent/native.js";
import { meshProgress, Progress } from "../progress.js";
import { stopMesh } from "./down.js";
import { collectStatus, renderStatus } from "./status.js";

export const UP_HELP = `usage: ambit up DIR [--nodes N] [--foreground] [--mesh-id ID] [--timeout SECONDS] [--observability]

Runs a local mesh from DIR (ordinary Kubernetes YAML): N nodes (network
namespaces joined by a bridge), the controller, one ztunnel per node, and every
Pod (Deployments, StatefulSets, DaemonSets, Jobs expanded) in its own network
namespace on its node (spec.nodeName, else spread). Containers' command/args
run as processes with their env; the image is ignored. Editing DIR while the
mesh is up applies the change. Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN).

options:
  --nodes N          nodes node-1..node-N (2); nodes named by pods are added
  --foreground       stay attached, print the access log, tear down on Ctrl-C
  --mesh-id ID       several meshes side by side (${DEFAULT_MESH_ID}) [AMBIT_MESH_ID]
  --timeout SECONDS  how long to wait for every pod to be ready (120)
  --replace          remove a previous mesh of the same id first
  --observability    also run Prometheus (scraping the controller, every ztunnel
                     and waypoint) and Jaeger (the waypoints' OTLP spans) in the
                     control plane; 'ambit status' prints their URLs. Installs
                     Debian's prometheus and builds Jaeger (once, minutes) when
                     missing [AMBIT_JAEGER_BIN: use this Jaeger binary]
  --scrape-interval SECONDS  Prometheus' scrape interval (2)

example:
  sudo ambit up examples/demo && sudo ambit status
  sudo ambit up examples/l7 --observability && sudo ambit status   # + Prometheus, Jaeger URLs
`;

interface UpArgs {
  dir: string;
  nodes: number;
  foreground: boolean;
  meshId: string;
  timeoutMs: number;
  replace: boolean;
  supervise: boolean;
  observability?: { scrapeIntervalSeconds: number; jaegerBin?: string };
}

function parseUpArgs(argv: string[]): UpArgs | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      nodes: { type: "string" },
      foreground: { type: "boolean" },
      "mesh-id": { type: "string" },
      timeout: { type: "string" },
      replace: { type: "boolean" },
      supervise: { type: "boolean" }, // internal: this process is the detached supervisor
      observability: { type: "boolean" },
      "scrape-interval": { type: "string" },
    },
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length !== 1)
    throw new AmbitError("CONFIG", "give one directory of Kubernetes YAML: ambit up DIR");
  const nodes = Number(values.nodes ?? "2");
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 200)
    throw new AmbitError("CONFIG", `--nodes: '${values.nodes}' is not a number of nodes (1-200)`);
  const timeout = Number(values.timeout ?? "120");
  if (!(timeout > 0))
    throw new AmbitError("CONFIG", `--timeout: '${values.timeout}' is not a number of seconds`);
  const meshId = values["mesh-id"] ?? process.env.AMBIT_MESH_ID ?? DEFAULT_MESH_ID;
  validateMeshId(meshId);
  if (values["scrape-interval"] !== undefined && !values.observability)
    throw new AmbitError("CONFIG", "--scrape-interval: only with --observability");
  const observability = values.observability
    ? {
        scrapeIntervalSeconds: validateScrapeInterval(Number(values["scrape-interval"] ?? "2")),
        ...(process.env.AMBIT_JAEGER_BIN ? { jaegerBin: process.env.AMBIT_JAEGER_BIN } : {}),
      }
    : undefined;
  return {
    dir: path.resolve(positionals[0]!),
    nodes,
    foreground: Boolean(values.foreground),
    meshId,
    timeoutMs: timeout * 1000,
    replace: Boolean(values.replace),
    supervise: Boolean(values.supervise),
    ...(observability ? { observability } : {}),
  };
}

/** Reads DIR once and prints its file/object/field errors; refuses a directory that cannot be read. */
async function checkDir(dir: string): Promise<void> {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw new AmbitError("CONFIG", `${dir}: not a directory`);
  const quiet = logger("up.check");
  quiet.level = "silent";
  const provider = new LocalProvider({ dir, logger: quiet });
  try {
    await provider.start();
    const errs = provider.errors();
    for (const e of errs)
      process.stderr.write(`${e.code === "UNKNOWN_KIND" ? "warning" : "error"}: ${e.message}\n`);
    if (provider.pods().length === 0)
      process.stderr.write(`warning: ${dir} has no pods or workloads to run\n`);
  } finally {
    await provider.close();
  }
}

function refuseIfUp(meshId: string, replace: boolean): void {
  const state = readState(meshId);
  if (!state || replace) return;
  const owner = typeof state.extra?.supervisorPid === "number" ? state.extra.supervisorPid : state.ownerPid;
  const running = owner !== undefined && alive(owner);
  throw new AmbitError(
    "LOCAL_STATE",
    running
      ? `mesh '${meshId}' is already up (from ${state.dir ?? "?"}): 'ambit down${meshId === DEFAULT_MESH_ID ? "" : ` --mesh-id ${meshId}`}' first, or pick another --mesh-id`
      : `mesh '${meshId}' was left behind by a supervisor that is gone: run 'ambit down${meshId === DEFAULT_MESH_ID ? "" : ` --mesh-id ${meshId}`}' (or use --replace)`,
  );
}

export function describeUnsettled(r: SettledReport): string[] {
  const lines: string[] = [];
  for (const p of [...r.components, ...r.pods]) {
    if (p.phase === "starting")
      lines.push(`  ${p.key}: not ready yet (see 'ambit logs ${p.key.replace(/^ambit-system\//, "")}')`);
    if (p.phase === "failed") lines.push(`  ${p.key}: failed: ${p.message ?? ""}`);
  }
  return lines;
}

async function printSummary(meshId: string): Promise<void> {
  const s = await collectStatus(meshId);
  if (s) process.stdout.write(`${renderStatus(s)}\n`);
  const flag = meshId === DEFAULT_MESH_ID ? "" : ` --mesh-id ${meshId}`;
  process.stdout.write(
    `\nnext: ambit status${flag} | ambit logs${flag} NS/POD | ambit exec${flag} NS/POD -- CMD | ambit down${flag}\n`,
  );
}

/** The supervisor in this process (--foreground, --supervise, `ambit demo`). */
export async function startSupervisor(
  args: Pick<UpArgs, "dir" | "nodes" | "meshId" | "replace" | "observability">,
  onProgress: (line: string) => void,
): Promise<MeshSupervisor> {
  return MeshSupervisor.start(
    {
      dir: args.dir,
      meshId: args.meshId,
      nodes: args.nodes,
      replace: args.replace,
      ...(args.observability ? { observability: args.observability } : {}),
    },
    onProgress,
  );
}

/**
 * Starts the supervisor in this process with SIGINT/SIGTERM handled from the
 * first moment: a signal while the mesh is still being built tears down
 * what was built and exits; later, `stopped` resolves after the teardown.
 */
export async function startAttached(
  args: Pick<UpArgs, "dir" | "nodes" | "meshId" | "replace" | "observability">,
  onProgress: (line: string) => void,
  onStop: () => void = () => undefined,
): Promise<{ sup: MeshSupervisor; stopped: Promise<number> }> {
  let started = false;
  const starting = startSupervisor(args, onProgress);
  const stopped = untilSignal(async () => {
    onStop();
    const sup = await starting.catch(() => undefined);
    await sup?.close();
    if (!started) process.exit(130);
  });
  const sup = await starting;
  started = true;
  return { sup, stopped };
}

/** Waits for SIGINT/SIGTERM, then runs close once; a second signal exits at once. */
export function untilSignal(
  close: () => Promise<void>,
  message = "tearing the mesh down...",
): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(1);
      stopping = true;
      if (message) process.stderr.write(`\nambit: ${message}\n`);
      close().then(
        () => resolve(0),
        (e: Error) => {
          process.stderr.write(`ambit: teardown: ${e.message}\n`);
          resolve(1);
        },
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

async function runForeground(args: UpArgs): Promise<number> {
  logger("supervisor").level = "warn";
  let follower: FileFollower | undefined;
  const progress = new Progress({ indent: "  " });
  const { sup, stopped } = await startAttached(args, meshProgress(progress), () => follower?.close());
  const report = await sup.whenSettled(args.timeoutMs);
  progress.done();
  if (sup.isClosed) return stopped;
  if (!report.settled)
    process.stderr.write(
      `not everything is ready after ${args.timeoutMs / 1000}s:\n${describeUnsettled(report).join("\n")}\n`,
    );
  await printSummary(args.meshId);
  process.stdout.write("\naccess log (Ctrl-C tears the mesh down):\n");
  const nodes = sup.runtime.layout.nodes.map((n) => n.name);
  follower = followAccessLogs(sup.paths, nodes, (node, a) =>
    process.stdout.write(`${formatAccess(node, a)}\n`),
  );
  return stopped;
}

type SupervisorMessage =
  | { type: "progress"; line: string }
  | { type: "settled"; report: SettledReport }
  | { type: "failed"; message: string };

/** The detached supervisor: reports to its parent over IPC until the parent lets go, then keeps the mesh. */
async function runSupervise(args: UpArgs): Promise<number> {
  const send = (m: SupervisorMessage) => {
    if (process.connected) process.send?.(m);
  };
  let attached: { sup: MeshSupervisor; stopped: Promise<number> };
  try {
    attached = await startAttached(args, (line) => send({ type: "progress", line }));
  } catch (e) {
    send({ type: "failed", message: (e as Error).message });
    return 1;
  }
  const { sup, stopped } = attached;
  send({ type: "settled", report: await sup.whenSettled(args.timeoutMs) });
  return stopped;
}

async function runDetached(args: UpArgs): Promise<number> {
  const paths = meshPaths(args.meshId);
  fs.mkdirSync(paths.logs, { recursive: true });
  const logFd = fs.openSync(paths.supervisorLog, "a");
  const child = fork(
    defaultCliMain(),
    [
      "up",
      args.dir,
      "--nodes",
      String(args.nodes),
      "--mesh-id",
      args.meshId,
      "--timeout",
      String(args.timeoutMs / 1000),
      "--supervise",
      ...(args.replace ? ["--replace"] : []),
      ...(args.observability
        ? ["--observability", "--scrape-interval", String(args.observability.scrapeIntervalSeconds)]
        : []),
    ],
    { detached: true, stdio: ["ignore", logFd, logFd, "ipc"], env: { ...process.env, NODE_OPTIONS: "" } },
  );
  fs.closeSync(logFd);
  process.stderr.write(
    `starting mesh '${args.meshId}' from ${args.dir} (supervisor pid ${child.pid}, log ${paths.supervisorLog})\n`,
  );
  const onInterrupt = () => {
    process.stderr.write("\ninterrupted: tearing the mesh down\n");
    child.kill("SIGTERM");
  };
  process.on("SIGINT", onInterrupt);
  const progress = new Progress({ indent: "  " });
  const onProgress = meshProgress(progress);
  const outcome = await new Promise<{ report?: SettledReport; failed?: string }>((resolve) => {
    child.on("message", (m: SupervisorMessage) => {
      if (m.type === "progress") onProgress(m.line);
      else if (m.type === "settled") resolve({ report: m.report });
      else resolve({ failed: m.message });
    });
    child.on("exit", (code, sig) =>
      resolve({ failed: `the supervisor exited (${sig ?? `code ${code}`}); see ${paths.supervisorLog}` }),
    );
  });
  process.off("SIGINT", onInterrupt);
  progress.done();
  if (outcome.failed) {
    process.stderr.write(`ambit up: ${outcome.failed}\n`);
    return 1;
  }
  child.disconnect();
  child.unref();
  const report = outcome.report!;
  if (!report.settled) {
    process.stderr.write(
      `not everything is ready after ${args.timeoutMs / 1000}s (the mesh keeps running):\n${describeUnsettled(report).join("\n")}\n`,
    );
  }
  await printSummary(args.meshId);
  const failed =
    report.pods.some((p) => p.phase === "failed") || report.components.some((p) => p.phase === "failed");
  return report.settled && !failed ? 0 : 1;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseUpArgs(argv);
  if (args === "help") {
    console.log(UP_HELP);
    return 0;
  }
  requireNetnsPrivileges("ambit up");
  if (args.supervise) return runSupervise(args);
  refuseIfUp(args.meshId, args.replace);
  await checkDir(args.dir);
  // --replace: the old mesh goes first, so that the new one's log is not removed with it.
  if (args.replace) await stopMesh(args.meshId);
  return args.foreground ? runForeground(args) : runDetached(args);
}

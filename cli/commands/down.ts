// `ambit down`: removes every namespace, process and rule that `ambit up`
// made, and nothing else. The supervisor is asked first (SIGTERM: it stops
// the pods and components it runs and removes the namespaces); whatever is
// left (a supervisor that crashed, a half-built mesh) is removed from the
// state file and the `ambit-<id>-` namespaces by local/teardown.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { alive, listNetns, meshPrefix, validateMeshId } from "../../local/network.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import { teardownMesh } from "../../local/teardown.js";
import { requireNetnsPrivileges } from "../../ztunnel/node-agent/native.js";

export const DOWN_HELP = `usage: ambit down [--mesh-id ID] [--keep-logs]

Tears the local mesh down: its pods, ztunnels and controller, every network
namespace named ambit-<ID>-*, the rules inside them, and its state directory
(/run/ambit/<ID>, logs included unless --keep-logs).

example:
  sudo ambit down
`;

/** Whether pid is `ambit up ... --supervise` (or the foreground `up`/`demo`), not a process that reused the pid. */
function isSupervisor(pid: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => a === "up" || a === "demo");
  } catch {
    return false;
  }
}

/** SIGTERM the supervisor and wait for it to finish its own teardown (bounded). */
async function stopSupervisor(pid: number, timeoutMs: number): Promise<boolean> {
  if (pid === process.pid || !alive(pid) || !isSupervisor(pid)) return false;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100)); // no exit event for a process we did not spawn
  }
  if (alive(pid)) process.kill(pid, "SIGKILL");
  return true;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "mesh-id": { type: "string" },
      "keep-logs": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DOWN_HELP);
    return 0;
  }
  const meshId = resolveMeshId(values["mesh-id"]);
  validateMeshId(meshId);
  requireNetnsPrivileges("ambit down");
  if (!(await stopMesh(meshId, Boolean(values["keep-logs"])))) {
    console.error(`no local mesh '${meshId}' is up; nothing to do`);
    return 0;
  }
  console.error(`mesh '${meshId}' is down`);
  return 0;
}

/** Stops the supervisor (it removes what it made), then whatever is left. False when there was nothing. */
export async function stopMesh(meshId: string, keepLogs = false): Promise<boolean> {
  const state = readState(meshId);
  if (!state && listNetns(meshPrefix(meshId)).length === 0) return false;
  const owner = typeof state?.extra?.supervisorPid === "number" ? state.extra.supervisorPid : state?.ownerPid;
  if (owner && (await stopSupervisor(owner, 20_000))) console.error(`stopped the supervisor (pid ${owner})`);
  const report = await teardownMesh(meshId, { graceMs: 3000, keepLogs });
  for (const p of report.processesStopped) console.error(`stopped ${p}`);
  if (report.namespacesRemoved.length > 0)
    console.error(`removed ${report.namespacesRemoved.length} namespaces (${meshPrefix(meshId)}*)`);
  return true;
}

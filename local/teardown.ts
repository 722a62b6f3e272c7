// `ambit down`: removes every namespace, process and rule that `up` made, and
// nothing else. Works from another process (reads the state file), on a
// partial setup, and when run twice.
//
// Processes: those recorded in the state file are signalled only if they are
// still the same process (pid and start time); processes inside the mesh's
// namespaces are ended as part of removing the namespaces. Rules: all of
// ambit's iptables rules live inside the mesh's pod namespaces, so they go
// with them; the host's tables are never touched.
import { requireNetnsPrivileges } from "../ztunnel/node-agent/native.js";
import { alive, destroyMeshNetwork, listNetns, meshPrefix, validateMeshId } from "./network.js";
import { isSameProcess, type ProcessRecord, readState, removeState } from "./state.js";

export interface TeardownReport {
  meshId: string;
  processesStopped: string[];
  namespacesRemoved: string[];
  stateRemoved: boolean;
}

export async function teardownMesh(
  meshId: string,
  opts: { graceMs?: number; keepLogs?: boolean } = {},
): Promise<TeardownReport> {
  validateMeshId(meshId);
  requireNetnsPrivileges("ambit down");
  const graceMs = opts.graceMs ?? 5000;
  const state = readState(meshId);
  const recorded = (state?.processes ?? []).filter((p) => p.pid !== process.pid && isSameProcess(p));
  // The owner (`up`'s supervisor) first, so it does not restart what we stop.
  if (state?.ownerPid && state.ownerPid !== process.pid) {
    const owner = recorded.find((p) => p.pid === state.ownerPid);
    if (owner) await stopProcesses([owner], graceMs);
  }
  await stopProcesses(recorded, graceMs);
  const namespacesRemoved =
    listNetns(meshPrefix(meshId)).length > 0 ? await destroyMeshNetwork(meshId, { graceMs }) : [];
  let stateRemoved = false;
  if (state && !opts.keepLogs) {
    removeState(meshId);
    stateRemoved = true;
  }
  return {
    meshId,
    processesStopped: recorded.map((p) => `${p.name} (${p.pid})`),
    namespacesRemoved,
    stateRemoved,
  };
}

/** SIGTERM (to the process group when it leads one), then SIGKILL after graceMs. */
export async function stopProcesses(procs: ProcessRecord[], graceMs: number): Promise<void> {
  const live = procs.filter((p) => isSameProcess(p));
  for (const p of live) signal(p.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  let left = live.filter((p) => alive(p.pid));
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50)); // polling: no exit event for processes we did not spawn
    left = left.filter((p) => alive(p.pid) && isSameProcess(p));
  }
  for (const p of left) signal(p.pid, "SIGKILL");
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

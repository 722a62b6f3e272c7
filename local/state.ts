// The state file of a local mesh, `/run/ambit/<meshId>/state.json`: what `up`
// made (namespaces, processes, pods and their IPs), so that `status`, `exec`,
// `logs` and `down` work from another process. Written atomically (temp file
// and rename) by the one process that runs the mesh; read by anyone.
//
// Processes are recorded with their start time (from /proc) so that a pid
// reused by an unrelated process after a crash is never signalled.
import fs from "node:fs";
import path from "node:path";
import { AmbitError } from "../core/errors/errors.js";
import type { MeshLayout, PodNetwork } from "./network.js";
import { writeFileAtomicSync } from "../core/files/write-atomic.js";

/** Where meshes keep their state: `/run/ambit`, or $AMBIT_RUN_DIR (read on every call). */
export function stateRoot(): string {
  return process.env.AMBIT_RUN_DIR ?? "/run/ambit";
}
const VERSION = 1;

export interface ProcessRecord {
  /** e.g. "controller", "ztunnel-node1", "default/client-0/app". */
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot). */
  startTime: number;
  /** Namespace name it runs in, when not the host's. */
  netns?: string;
  /** Where its stdout/stderr go. */
  logFile?: string;
}

export interface PodRecord extends PodNetwork {
  /** Captured by the node's ztunnel. */
  enrolled?: boolean;
  /** SPIFFE identity, once known. */
  identity?: string;
  ready?: boolean;
  /** Container name -> restarts so far. */
  restarts?: Record<string, number>;
}

export interface MeshState {
  version: number;
  meshId: string;
  /** The directory given to `ambit up`. */
  dir?: string;
  createdAt: string;
  /** pid of the process that runs the mesh (`ambit up`'s supervisor). */
  ownerPid?: number;
  layout: MeshLayout;
  pods: Record<string, PodRecord>;
  processes: ProcessRecord[];
  /** Free-form additions by the CLI (addresses of the controller, ...). */
  extra?: Record<string, unknown>;
}

export function stateDir(meshId: string): string {
  return path.join(stateRoot(), meshId);
}

export function statePath(meshId: string): string {
  return path.join(stateDir(meshId), "state.json");
}

/** Directory for the mesh's logs (`<stateDir>/logs`), created on demand. */
export function logDir(meshId: string): string {
  const dir = path.join(stateDir(meshId), "logs");
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function newState(layout: MeshLayout, dir?: string): MeshState {
  return {
    version: VERSION,
    meshId: layout.meshId,
    ...(dir !== undefined ? { dir } : {}),
    createdAt: new Date().toISOString(),
    ownerPid: process.pid,
    layout,
    pods: {},
    // The owner first: `down` stops it before anything it would restart.
    processes: [processRecord("owner", process.pid)],
  };
}

export function writeState(state: MeshState): void {
  const file = statePath(state.meshId);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomicSync(file, `${JSON.stringify(state, null, 2)}\n`);
}

/** The mesh's state, or undefined when no such mesh is recorded. */
export function readState(meshId: string): MeshState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(statePath(meshId), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let state: MeshState;
  try {
    state = JSON.parse(text) as MeshState;
  } catch (err) {
    throw new AmbitError("LOCAL_STATE", `${statePath(meshId)}: not valid JSON (${(err as Error).message})`);
  }
  if (state.version !== VERSION || state.meshId !== meshId) {
    throw new AmbitError(
      "LOCAL_STATE",
      `${statePath(meshId)}: unexpected version ${state.version} or mesh id ${state.meshId}`,
    );
  }
  return state;
}

/** Reads, changes and writes back the state (single writer: the mesh's owner). */
export function updateState(meshId: string, change: (s: MeshState) => void): MeshState {
  const s = readState(meshId);
  if (!s) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' (no ${statePath(meshId)})`);
  change(s);
  writeState(s);
  return s;
}

/** Ids of the meshes with a state file. */
export function listMeshes(): string[] {
  try {
    return fs.readdirSync(stateRoot()).filter((d) => fs.existsSync(statePath(d)));
  } catch {
    return [];
  }
}

/** Removes the state directory (logs included). */
export function removeState(meshId: string): void {
  fs.rmSync(stateDir(meshId), { recursive: true, force: true, maxRetries: 5 });
}

/** Start time of a live process (field 22 of /proc/<pid>/stat), or undefined. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); start time is field 22.
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

export function processRecord(name: string, pid: number, extra: Partial<ProcessRecord> = {}): ProcessRecord {
  return { name, pid, startTime: processStartTime(pid) ?? 0, ...extra };
}

/** Whether the recorded process is still the same live process. */
export function isSameProcess(p: ProcessRecord): boolean {
  const now = processStartTime(p.pid);
  return now !== undefined && now === p.startTime;
}

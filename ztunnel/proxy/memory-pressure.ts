// Admission under memory pressure. A ztunnel that keeps accepting while its
// memory grows ends OOM-killed, and then every connection of the node's pods
// is reset; refusing new connections early keeps the ones it has. Memory is
// sampled on a timer (never per connection): the cgroup's working set when a
// memory limit applies to its cgroup (v2 memory.max, or v1
// memory.limit_in_bytes on nodes still on cgroup v1: what the kernel's OOM
// killer and the kubelet look at), else the process's RSS. Pressure starts at the limit and ends
// only below RESUME_FRACTION of it, so admission does not flap around the
// limit. One log line when an episode starts and one when it ends; each
// refused connection is counted in ambit_ztunnel_refused_connections_total
// {reason="memory"} (the family of the fd-limit refusals).
import { EventEmitter } from "node:events";
import fs from "node:fs";
import { logger } from "../../core/telemetry/logger.js";
import { counter } from "../../core/telemetry/metrics.js";

const log = logger("ztunnel.memory");

/** Pressure ends once usage is below this fraction of the limit. */
export const RESUME_FRACTION = 0.9;
/** Without --memory-limit-mb, the limit is this fraction of the cgroup's memory.max. */
export const CGROUP_DEFAULT_FRACTION = 0.9;
export const DEFAULT_SAMPLE_MS = 1000;

const refusedTotal = () =>
  counter(
    "ambit_ztunnel_refused_connections_total",
    "New connections a pod listener refused, by listener and reason (fd_limit: within the reserve of RLIMIT_NOFILE; else the accept errno)",
    ["listener", "reason"],
  );

/** The pure decision: is the process under pressure after this sample, given whether it was before. */
export function nextPressure(
  pressured: boolean,
  usedBytes: number,
  limitBytes: number | undefined,
  resumeFraction = RESUME_FRACTION,
): boolean {
  if (limitBytes === undefined || limitBytes <= 0) return false;
  if (usedBytes >= limitBytes) return true;
  if (pressured) return usedBytes >= limitBytes * resumeFraction;
  return false;
}

/** A cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes): bytes, or undefined for no limit and anything unreadable. */
export function parseMemoryMax(text: string): number | undefined {
  const t = text.trim();
  if (t === "" || t === "max") return undefined;
  const n = Number(t);
  // cgroup v1 writes "no limit" as the largest page-aligned 64-bit value (9223372036854771712).
  return Number.isFinite(n) && n > 0 && n < 2 ** 62 ? n : undefined;
}

/** Where this process's memory controller is, and which cgroup version's files it has. */
export interface MemoryCgroup {
  version: 1 | 2;
  dir: string;
}

/**
 * The memory controller's directory from /proc/self/cgroup: a v1
 * "N:memory:/path" line wins (hybrid hosts keep memory on v1), else the v2
 * "0::/path" line. Without a cgroup namespace the path is relative to the
 * host's hierarchy; inside a container whose own cgroup is mounted as the
 * root, that path does not exist there and the mount root is the cgroup.
 */
export function memoryCgroup(
  procSelfCgroup: string,
  exists: (path: string) => boolean = fs.existsSync,
  root = "/sys/fs/cgroup",
): MemoryCgroup | undefined {
  const lines = procSelfCgroup.split("\n");
  const pick = (base: string, path: string) => {
    const full = path === "/" ? base : `${base}${path}`;
    return exists(full) ? full : base;
  };
  const v1 = lines.map((l) => /^\d+:([^:]*):(.*)$/.exec(l)).find((m) => m && m[1].split(",").includes("memory"));
  if (v1) return { version: 1, dir: pick(`${root}/memory`, v1[2].trim()) };
  const v2 = lines.find((l) => l.startsWith("0::"));
  if (v2 === undefined) return undefined;
  return { version: 2, dir: pick(root, v2.slice(3).trim()) };
}

/** Working set as the kubelet computes it: usage minus the inactive file cache (v1 counts it hierarchically as total_inactive_file). */
export function workingSet(current: string, stat: string, version: 1 | 2 = 2): number {
  const cur = Number(current.trim());
  const key = version === 1 ? "total_inactive_file" : "inactive_file";
  const inactive = new RegExp(`^${key} (\\d+)$`, "m").exec(stat)?.[1];
  return Math.max(0, cur - (inactive ? Number(inactive) : 0));
}

/**
 * The limit in force: --memory-limit-mb when given (0: off), else
 * CGROUP_DEFAULT_FRACTION of the cgroup's limit when there is one, else off.
 */
export function resolveMemoryLimit(
  limitMb: number | undefined,
  cgroupMax: number | undefined,
): number | undefined {
  if (limitMb !== undefined) return limitMb > 0 ? limitMb * 1024 * 1024 : undefined;
  return cgroupMax === undefined ? undefined : Math.floor(cgroupMax * CGROUP_DEFAULT_FRACTION);
}

export interface MemorySample {
  usedBytes: number;
  limitBytes: number | undefined;
  source: "cgroup" | "rss";
}

const CGROUP_FILES = {
  1: { limit: "memory.limit_in_bytes", usage: "memory.usage_in_bytes" },
  2: { limit: "memory.max", usage: "memory.current" },
} as const;

/** Reads usage and limit now: the cgroup's when it has a memory limit (re-read: it can change at run time), else RSS. */
export function sampleMemory(limitMb: number | undefined, cgroup: MemoryCgroup | undefined): MemorySample {
  if (cgroup !== undefined) {
    const files = CGROUP_FILES[cgroup.version];
    try {
      const max = parseMemoryMax(fs.readFileSync(`${cgroup.dir}/${files.limit}`, "utf8"));
      if (max !== undefined) {
        const used = workingSet(
          fs.readFileSync(`${cgroup.dir}/${files.usage}`, "utf8"),
          fs.readFileSync(`${cgroup.dir}/memory.stat`, "utf8"),
          cgroup.version,
        );
        return { usedBytes: used, limitBytes: resolveMemoryLimit(limitMb, max), source: "cgroup" };
      }
    } catch {
      // no memory controller here: the process's RSS
    }
  }
  return {
    usedBytes: process.memoryUsage.rss(),
    limitBytes: resolveMemoryLimit(limitMb, undefined),
    source: "rss",
  };
}

export interface MemoryAdmissionOptions {
  /** --memory-limit-mb: undefined = 90% of the cgroup's memory.max (off without one); 0 = off. */
  limitMb?: number;
  sampleMs?: number;
}

const mb = (b: number | undefined) => (b === undefined ? undefined : Math.round(b / 1048576));

/**
 * The process-wide admission state, sampled on a timer between start() and
 * close(). Emits "pressure" (MemorySample) when an episode starts and
 * "relief" when it ends: the same two places that log.
 */
export class MemoryAdmission extends EventEmitter {
  private limitMb: number | undefined;
  private sampleMs = DEFAULT_SAMPLE_MS;
  private cgroup: MemoryCgroup | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pressured = false;
  private last: MemorySample | undefined;
  private episode = { since: 0, refused: 0 };

  start(opts: MemoryAdmissionOptions = {}): void {
    this.close();
    this.limitMb = opts.limitMb;
    this.sampleMs = opts.sampleMs ?? DEFAULT_SAMPLE_MS;
    try {
      this.cgroup = memoryCgroup(fs.readFileSync("/proc/self/cgroup", "utf8"));
    } catch {
      this.cgroup = undefined;
    }
    this.sample();
    if (this.last?.limitBytes !== undefined)
      log.info(
        { limitMb: mb(this.last.limitBytes), source: this.last.source },
        "memory admission: new connections refused above the limit",
      );
    this.timer = setInterval(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  /** Changes the limit at run time (MB; 0 = off; undefined = the cgroup default) and samples at once. */
  setLimitMb(limitMb: number | undefined): void {
    this.limitMb = limitMb;
    this.sample();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.pressured) this.leave();
    this.pressured = false;
  }

  get underPressure(): boolean {
    return this.pressured;
  }

  status(): { pressured: boolean; usedMb?: number; limitMb?: number; source?: string } {
    const s = this.last;
    return {
      pressured: this.pressured,
      ...(s ? { usedMb: mb(s.usedBytes), source: s.source } : {}),
      ...(s?.limitBytes !== undefined ? { limitMb: mb(s.limitBytes) } : {}),
    };
  }

  /** True when a new connection may be admitted; false counts it as refused (the caller resets it). */
  admit(listener: string): boolean {
    if (!this.pressured) return true;
    this.episode.refused++;
    refusedTotal().inc({ listener, reason: "memory" });
    return false;
  }

  private sample(): void {
    const s = sampleMemory(this.limitMb, this.cgroup);
    this.last = s;
    const next = nextPressure(this.pressured, s.usedBytes, s.limitBytes);
    if (next === this.pressured) return;
    this.pressured = next;
    if (next) {
      this.episode = { since: Date.now(), refused: 0 };
      log.warn(
        { usedMb: mb(s.usedBytes), limitMb: mb(s.limitBytes), source: s.source },
        "memory pressure: refusing new connections, serving the open ones",
      );
      this.emit("pressure", s);
    } else this.leave();
  }

  private leave(): void {
    log.warn(
      {
        usedMb: mb(this.last?.usedBytes),
        refused: this.episode.refused,
        durationMs: Date.now() - this.episode.since,
      },
      "memory pressure over: accepting new connections again",
    );
    this.emit("relief", { refused: this.episode.refused });
  }
}

/** The ztunnel's one admission state (memory is per process, like the fd limit). */
export const memoryAdmission = new MemoryAdmission();

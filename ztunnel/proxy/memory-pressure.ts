// Admission under memory pressure. A ztunnel that keeps accepting while its
// memory grows ends OOM-killed, and then every connection of the node's pods
// is reset; refusing new connections early keeps the ones it has. Memory is
// sampled on a timer (never per connection): the cgroup's working set when a
// cgroup v2 memory.max applies (what the kernel's OOM killer and the kubelet
// look at), else the process's RSS. Pressure starts at the limit and ends
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

/** A cgroup v2 memory.max: bytes, or undefined for "max" (no limit) and anything unreadable. */
export function parseMemoryMax(text: string): number | undefined {
  const t = text.trim();
  if (t === "" || t === "max") return undefined;
  const n = Number(t);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** The cgroup v2 directory of this process from /proc/self/cgroup ("0::/path"), or undefined (v1 only). */
export function cgroupV2Dir(procSelfCgroup: string, root = "/sys/fs/cgroup"): string | undefined {
  const line = procSelfCgroup.split("\n").find((l) => l.startsWith("0::"));
  if (line === undefined) return undefined;
  const path = line.slice(3).trim();
  return path === "/" ? root : `${root}${path}`;
}

/** Working set as the kubelet computes it: memory.current minus the inactive file cache. */
export function workingSet(current: string, stat: string): number {
  const cur = Number(current.trim());
  const inactive = /^inactive_file (\d+)$/m.exec(stat)?.[1];
  return Math.max(0, cur - (inactive ? Number(inactive) : 0));
}

/**
 * The limit in force: --memory-limit-mb when given (0: off), else
 * CGROUP_DEFAULT_FRACTION of the cgroup's memory.max when there is one, else off.
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

/** Reads usage and limit now: the cgroup's when it has a memory.max (re-read: it can change at run time), else RSS. */
export function sampleMemory(limitMb: number | undefined, cgroupDir: string | undefined): MemorySample {
  if (cgroupDir !== undefined) {
    try {
      const max = parseMemoryMax(fs.readFileSync(`${cgroupDir}/memory.max`, "utf8"));
      if (max !== undefined) {
        const used = workingSet(
          fs.readFileSync(`${cgroupDir}/memory.current`, "utf8"),
          fs.readFileSync(`${cgroupDir}/memory.stat`, "utf8"),
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
  private cgroupDir: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pressured = false;
  private last: MemorySample | undefined;
  private episode = { since: 0, refused: 0 };

  start(opts: MemoryAdmissionOptions = {}): void {
    this.close();
    this.limitMb = opts.limitMb;
    this.sampleMs = opts.sampleMs ?? DEFAULT_SAMPLE_MS;
    try {
      this.cgroupDir = cgroupV2Dir(fs.readFileSync("/proc/self/cgroup", "utf8"));
    } catch {
      this.cgroupDir = undefined;
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
    const s = sampleMemory(this.limitMb, this.cgroupDir);
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

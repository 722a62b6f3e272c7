// CPU and memory of the proxy processes during a load phase, read from /proc:
// utime+stime of each process and its descendants (a proxy may fork workers),
// VmRSS sampled periodically. vCPU = CPU seconds / wall seconds.

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** Parsed fields of /proc/PID/stat (comm may contain spaces and parentheses). */
export function parseStat(text: string): { ppid: number; utime: number; stime: number } {
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** VmRSS in bytes from /proc/PID/status text. */
export function parseRss(text: string): number {
  const m = text.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) * 1024 : 0;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** pid and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const stat = read(`/proc/${e}/stat`);
    if (!stat) continue;
    const { ppid } = parseStat(stat);
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop() as number;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds used so far by the tree rooted at pid (exited descendants are lost; proxies keep theirs). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const p of pids) {
    const stat = read(`/proc/${p}/stat`);
    if (!stat) continue;
    const s = parseStat(stat);
    ticks += s.utime + s.stime;
  }
  return ticks / ticksPerSecond();
}

function rssBytes(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    const status = read(`/proc/${p}/status`);
    if (status) sum += parseRss(status);
  }
  return sum;
}

export interface ProcessUsage {
  role: string;
  /** Average vCPU over the phase (CPU seconds / wall seconds). */
  vcpu: number;
  cpuSeconds: number;
  rssAvgMB: number;
  rssMaxMB: number;
}

export interface Measured {
  role: string;
  pid: number;
}

/** Samples a set of processes between start() and stop(). */
export class UsageSampler {
  private t0 = 0;
  private cpu0 = new Map<string, number>();
  private rss = new Map<string, number[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly procs: readonly Measured[],
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    this.t0 = performance.now();
    for (const p of this.procs) {
      this.cpu0.set(p.role, cpuSeconds(processTree(p.pid)));
      this.rss.set(p.role, []);
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    for (const p of this.procs) this.rss.get(p.role)?.push(rssBytes(processTree(p.pid)));
  }

  stop(): ProcessUsage[] {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const wall = (performance.now() - this.t0) / 1000;
    return this.procs.map((p) => {
      const used = cpuSeconds(processTree(p.pid)) - (this.cpu0.get(p.role) ?? 0);
      const samples = this.rss.get(p.role) ?? [0];
      const mb = (b: number) => b / (1024 * 1024);
      return {
        role: p.role,
        cpuSeconds: used,
        vcpu: wall > 0 ? used / wall : 0,
        rssAvgMB: mb(samples.reduce((a, b) => a + b, 0) / samples.length),
        rssMaxMB: mb(Math.max(...samples)),
      };
    });
  }
}

/** Current RSS of one process tree, in MB. */
export function rssMB(pid: number): number {
  return rssBytes(processTree(pid)) / (1024 * 1024);
}

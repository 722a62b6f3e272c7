// Processes for the benchmark: one-shot commands (run to completion, output
// captured), long-lived servers and proxies started inside a network
// namespace (stopped by pid, never by name), and waiting until a port answers.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { connect } from "node:net";
import { AmbitError } from "../core/errors/errors.js";

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to completion; rejects on non-zero exit unless allowFail. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { allowFail?: boolean; timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        if (code !== 0 && !opts.allowFail) {
          reject(
            new AmbitError(
              "NETNS_COMMAND",
              `${cmd} ${args.join(" ")} exited ${code}: ${stderr.trim().slice(-800)}`,
              {
                cmd,
                args,
              },
            ),
          );
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command inside a named network namespace (`ip netns exec` execs it, keeping its pid). */
export function runIn(
  netns: string,
  cmd: string,
  args: readonly string[],
  opts: Parameters<typeof run>[2] = {},
) {
  return run("ip", ["netns", "exec", netns, cmd, ...args], opts);
}

/** A long-lived process the harness owns; close() stops exactly this pid. */
export class Proc {
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;
  private readonly log: WriteStream;

  private constructor(
    readonly role: string,
    private readonly child: ChildProcess,
    logPath: string,
  ) {
    this.log = createWriteStream(logPath, { flags: "a" });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? null : 0);
        resolve(this.exitCode);
      });
      child.once("error", () => {
        this.exitCode = null;
        resolve(null);
      });
    });
  }

  /** Starts CMD inside NETNS (or the current namespace when netns is undefined); output goes to logPath. */
  static start(
    role: string,
    netns: string | undefined,
    cmd: string,
    args: readonly string[],
    logPath: string,
    env: NodeJS.ProcessEnv = process.env,
  ): Proc {
    const [file, argv] = netns ? ["ip", ["netns", "exec", netns, cmd, ...args]] : [cmd, [...args]];
    const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"], env, detached: false });
    return new Proc(role, child, logPath);
  }

  get pid(): number {
    if (this.child.pid === undefined)
      throw new AmbitError("NETNS_COMMAND", `${this.role}: process did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async close(graceMs = 3000): Promise<void> {
    if (this.running && this.child.pid !== undefined) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.log.end();
    await once(this.log, "close").catch(() => undefined);
  }
}

/** Resolves when a TCP connect to ip:port succeeds from inside netns-less code; used via waitForPortIn. */
function tryConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: ip, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Waits until ip:port accepts a TCP connection, as seen from netns (checked
 * with a short-lived probe inside the namespace), or the process dies.
 */
export async function waitForPort(
  netns: string | undefined,
  ip: string,
  port: number,
  opts: { proc?: Proc; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let delay = 20;
  for (;;) {
    if (opts.proc && !opts.proc.running) {
      throw new AmbitError("NETNS_COMMAND", `${opts.proc.role} exited before ${ip}:${port} was ready`);
    }
    const ok = netns
      ? (
          await runIn(netns, "bash", ["-c", `exec 3<>/dev/tcp/${ip}/${port}`], {
            allowFail: true,
            timeoutMs: 3000,
          })
        ).code === 0
      : await tryConnect(ip, port);
    if (ok) return;
    if (Date.now() > deadline)
      throw new AmbitError("NETNS_COMMAND", `${ip}:${port} not ready in ${netns ?? "host"}`);
    // Readiness is polled (the port is in another namespace; there is no event to wait on).
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}

// Processes inside a network namespace (nsenter --net): the containers of
// the pod runner, exec probes, and `ambit exec`.
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import os from "node:os";
import { AmbitError } from "../core/errors/errors.js";

/** Starts argv inside the namespace (via nsenter, which execs: the pid is the program's). */
export function spawnInNetns(
  netnsPath: string,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: StdioOptions; detached?: boolean } = {},
): ChildProcess {
  if (argv.length === 0) throw new AmbitError("INVALID_FIELD", "empty command");
  return spawn("nsenter", [`--net=${netnsPath}`, "--", ...argv], {
    env: opts.env ?? process.env,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    stdio: opts.stdio ?? "inherit",
    detached: opts.detached ?? false,
  });
}

/** Runs argv inside the namespace to completion (`ambit exec`); resolves with the exit code (128+n on signal n). */
export function execInNetns(
  netnsPath: string,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: StdioOptions; timeoutMs?: number } = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawnInNetns(netnsPath, argv, { ...opts, stdio: opts.stdio ?? "inherit" });
    const timer =
      opts.timeoutMs !== undefined ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.on("error", (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, sig) => {
      if (timer) clearTimeout(timer);
      resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0));
    });
  });
}

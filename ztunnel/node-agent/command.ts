// Runs system tools (ip, iptables-restore, nsenter) with argv arrays, never
// through a shell string built from input, and turns a failure into an error
// that names the command and quotes its stderr.
import { spawn } from "node:child_process";
import { AmbitError } from "../../core/errors/errors.js";

export class CommandError extends AmbitError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      "NETNS_COMMAND",
      `command failed (exit ${exitCode}): ${argv.join(" ")}: ${stderr.trim() || "(no output)"}`,
      {
        argv,
        exitCode,
      },
    );
    this.name = "CommandError";
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs argv; resolves with its output, rejects with CommandError on a non-zero exit unless `allowFail`. */
export function runCommand(
  argv: readonly string[],
  opts: { input?: string; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (!file) {
      reject(new AmbitError("NETNS_COMMAND", "empty command"));
      return;
    }
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (err) => reject(new CommandError(argv, null, err.message)));
    child.on("close", (code) => {
      if (code === 0 || opts.allowFail) resolve({ stdout, stderr, code: code ?? -1 });
      else reject(new CommandError(argv, code, stderr));
    });
    child.stdin.on("error", () => {
      // The tool may exit before reading its input; its exit code tells.
    });
    child.stdin.end(opts.input ?? "");
  });
}

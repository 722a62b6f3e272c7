// The two programs `ambit up --observability` runs, made available on first
// use with progress: Debian's prometheus (apt-get, as scripts/setup-system.sh
// does) and Jaeger built from its Go module by scripts/build-jaeger.sh into
// ~/.cache/ambit/bin (minutes, once; later runs find it at once).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AmbitError } from "../core/errors/errors.js";
import { PROMETHEUS_BIN } from "./observability.js";

export interface ObservabilityBinaries {
  prometheus: string;
  jaeger: string;
}

export interface BinaryOptions {
  /** $AMBIT_JAEGER_BIN: a Jaeger binary to use as is. */
  jaegerBin?: string;
  /** $AMBIT_CACHE (default ~/.cache/ambit): where build-jaeger.sh caches. */
  cacheDir?: string;
  prometheusBin?: string;
}

/** Where build-jaeger.sh puts Jaeger (pure). */
export function cachedJaegerPath(cacheDir?: string): string {
  return path.join(cacheDir ?? path.join(os.homedir(), ".cache", "ambit"), "bin", "jaeger");
}

/** scripts/build-jaeger.sh of this checkout: searched upward from this module (dist/ and .build/ trees alike). */
export function findBuildScript(from = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "scripts", "build-jaeger.sh");
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Runs argv, passing each output line to `line`; rejects on a non-zero exit with the last lines. */
function runWithProgress(
  argv: string[],
  line: (l: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env });
    const lines: string[] = [];
    const onData = (buf: Buffer, carry: { rest: string }) => {
      const parts = (carry.rest + buf.toString("utf8")).split("\n");
      carry.rest = parts.pop() ?? "";
      for (const l of parts) {
        lines.push(l);
        if (lines.length > 200) lines.shift();
        if (l.trim()) line(l);
      }
    };
    const out = { rest: "" };
    const err = { rest: "" };
    child.stdout.on("data", (b: Buffer) => onData(b, out));
    child.stderr.on("data", (b: Buffer) => onData(b, err));
    child.on("error", (e) => reject(new AmbitError("OBSERVABILITY", `${argv[0]}: ${e.message}`)));
    child.on("close", (code) => {
      for (const rest of [out.rest, err.rest]) if (rest) lines.push(rest);
      if (code === 0) resolve(lines);
      else
        reject(
          new AmbitError(
            "OBSERVABILITY",
            `${argv.join(" ")} failed (code ${code}):\n${lines.slice(-10).join("\n")}`,
          ),
        );
    });
  });
}

export async function ensurePrometheus(
  progress: (line: string) => void,
  bin = PROMETHEUS_BIN,
): Promise<string> {
  if (fs.existsSync(bin)) return bin;
  if (process.getuid?.() !== 0)
    throw new AmbitError("OBSERVABILITY", `${bin} is missing: run scripts/setup-system.sh as root`);
  progress("installing Debian's prometheus (apt-get; once, about a minute)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await runWithProgress(["apt-get", "update", "-qq"], () => undefined, env);
  await runWithProgress(
    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
    (l) => {
      // The lines that say how far it got; the rest is apt's chatter.
      if (/^(Get:|Unpacking|Setting up)/.test(l)) progress(`  apt: ${l.slice(0, 100)}`);
    },
    env,
  );
  if (!fs.existsSync(bin))
    throw new AmbitError("OBSERVABILITY", `apt-get installed prometheus but ${bin} is not there`);
  return bin;
}

export async function ensureJaeger(
  progress: (line: string) => void,
  opts: BinaryOptions = {},
): Promise<string> {
  if (opts.jaegerBin) {
    if (!fs.existsSync(opts.jaegerBin))
      throw new AmbitError("OBSERVABILITY", `AMBIT_JAEGER_BIN: ${opts.jaegerBin} does not exist`);
    return opts.jaegerBin;
  }
  const cached = cachedJaegerPath(opts.cacheDir);
  const stamped =
    fs.existsSync(cached) && fs.readdirSync(path.dirname(cached)).some((f) => f.startsWith(".jaeger-"));
  if (stamped) return cached;
  const script = findBuildScript();
  if (!script)
    throw new AmbitError(
      "OBSERVABILITY",
      `no Jaeger at ${cached} and no scripts/build-jaeger.sh to build it: set AMBIT_JAEGER_BIN`,
    );
  progress(`building Jaeger from its Go module (${script}; once, several minutes)`);
  const env = { ...process.env, ...(opts.cacheDir ? { AMBIT_CACHE: opts.cacheDir } : {}) };
  const lines = await runWithProgress(
    ["bash", script],
    (l) => {
      if (l.startsWith("build-jaeger:")) progress(`  ${l}`);
    },
    env,
  );
  const built = lines
    .filter((l) => l.trim())
    .pop()
    ?.trim();
  if (!built || !fs.existsSync(built))
    throw new AmbitError("OBSERVABILITY", `build-jaeger.sh did not print a binary path`);
  return built;
}

export async function ensureObservabilityBinaries(
  progress: (line: string) => void,
  opts: BinaryOptions = {},
): Promise<ObservabilityBinaries> {
  const prometheus = await ensurePrometheus(progress, opts.prometheusBin);
  const jaeger = await ensureJaeger(progress, opts);
  return { prometheus, jaeger };
}

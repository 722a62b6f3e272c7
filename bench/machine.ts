// What the numbers were measured on: CPU model, cores, kernel, tool versions.
import { cpus, loadavg, release, totalmem } from "node:os";
import { run } from "./procs.js";
import type { Machine } from "./results.js";

async function version(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  const r = await run(cmd, args, { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
  if (!r) return "missing";
  return (`${r.stdout}\n${r.stderr}`.match(pattern)?.[1] ?? "unknown").trim();
}

export async function describeMachine(fortio: string): Promise<Machine> {
  const lscpu = await run("lscpu", [], { allowFail: true }).catch(() => undefined);
  const model = lscpu?.stdout.match(/^Model name:\s+(.+)$/m)?.[1] ?? cpus()[0]?.model ?? "unknown";
  return {
    cpuModel: model.trim(),
    cores: cpus().length,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    loadAverage: loadavg(),
    versions: {
      node: process.version,
      haproxy: await version("haproxy", ["-v"], /version (\S+)/),
      fortio: await version(fortio, ["version"], /^(\S+)/),
      wrk: await version("wrk", ["-v"], /wrk (\S+)/),
      h2load: await version("h2load", ["--version"], /nghttp2\/(\S+)/),
      iperf3: await version("iperf3", ["--version"], /iperf (\S+)/),
      openssl: await version("openssl", ["version"], /OpenSSL (\S+)/),
    },
  };
}

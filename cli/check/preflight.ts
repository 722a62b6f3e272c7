// `ambit check`'s preflight: what `ambit up` (and a node of a cluster install)
// needs from this machine. The judgements are pure functions of what was
// found (unit-tested); `probePreflight` does the looking: commands on PATH,
// versions, the CNI plugin directories, the controller's ports, and the one
// check that cannot be judged from versions: ambit's real capture rules
// (REDIRECT, mark/connmark, CONNMARK, a fwmark policy route) installed in a
// scratch network namespace, which is removed again.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { runCommand } from "../../ztunnel/node-agent/command.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail?: string;
  /** What to do about it (problems only). */
  fix?: string;
  /** Worth knowing, not a problem: does not fail the check. */
  warn?: boolean;
}

/** Where Debian's containernetworking-plugins (and most installs) put the CNI plugins. */
export const CNI_DIRS = ["/opt/cni/bin", "/usr/lib/cni"];
/** What ambit's CNI plugin chains after on a node (primary network and addresses). */
export const CNI_REQUIRED = ["bridge", "host-local", "loopback"];
export const MIN_KERNEL: [number, number] = [5, 4];
export const MIN_IPTABLES: [number, number, number] = [1, 8, 0];
export const MIN_NODE = 20;
/** The controller's xDS, secure (xDS + CA over TLS) and admin ports. */
export const CONTROLLER_PORTS = [15010, 15012, 15014];

function atLeast(have: number[], want: number[]): boolean {
  for (let i = 0; i < want.length; i++) {
    const h = have[i] ?? 0;
    const w = want[i] ?? 0;
    if (h !== w) return h > w;
  }
  return true;
}

export function checkRoot(euid: number | undefined): CheckResult {
  return euid === 0
    ? { name: "running as root", ok: true }
    : {
        name: "running as root",
        ok: false,
        fix: "run ambit with sudo: network namespaces and iptables need root",
      };
}

export function checkNode(version: string): CheckResult {
  const major = Number(version.replace(/^v/, "").split(".")[0]);
  const name = `Node.js ${version.replace(/^v/, "")}`;
  return major >= MIN_NODE
    ? { name, ok: true }
    : { name, ok: false, fix: `install Node.js ${MIN_NODE} or later` };
}

/** `uname -r`, e.g. "6.1.0-18-amd64". */
export function checkKernel(release: string): CheckResult {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const want = MIN_KERNEL.join(".");
  if (!m)
    return {
      name: `kernel ${release}`,
      ok: false,
      detail: "unreadable version",
      fix: `use Linux ${want} or later`,
    };
  return atLeast([Number(m[1]), Number(m[2])], MIN_KERNEL)
    ? { name: `kernel ${release}`, ok: true }
    : {
        name: `kernel ${release}`,
        ok: false,
        detail: `older than ${want}`,
        fix: `use Linux ${want} or later (transparent sockets, nf_tables and SO_REUSEPORT migration)`,
      };
}

/** `iptables -V`, e.g. "iptables v1.8.9 (nf_tables)"; undefined when not installed. */
export function checkIptablesVersion(line: string | undefined): CheckResult {
  if (line === undefined)
    return { name: "iptables installed", ok: false, fix: "apt-get install iptables (the nf_tables backend)" };
  const m = /v(\d+)\.(\d+)\.(\d+)(?:\s+\(([^)]+)\))?/.exec(line);
  if (!m)
    return { name: "iptables version", ok: false, detail: line.trim(), fix: "apt-get install iptables" };
  const backend = m[4] ?? "legacy";
  const name = `iptables ${m[1]}.${m[2]}.${m[3]} (${backend})`;
  if (!atLeast([Number(m[1]), Number(m[2]), Number(m[3])], MIN_IPTABLES))
    return {
      name,
      ok: false,
      detail: `older than ${MIN_IPTABLES.join(".")}`,
      fix: "apt-get install iptables (1.8 or later)",
    };
  return { name, ok: true };
}

/** One line per plugin directory found; a problem when no directory has every required plugin. */
export function checkCni(found: Record<string, string[] | undefined>): CheckResult {
  const dirs = Object.entries(found).filter(([, files]) => files !== undefined) as [string, string[]][];
  for (const [dir, files] of dirs) {
    const missing = CNI_REQUIRED.filter((p) => !files.includes(p));
    if (missing.length === 0) return { name: `CNI plugins in ${dir} (${CNI_REQUIRED.join(", ")})`, ok: true };
  }
  const detail =
    dirs.length === 0
      ? `none of ${Object.keys(found).join(", ")} exists`
      : dirs
          .map(([dir, files]) => `${dir} lacks ${CNI_REQUIRED.filter((p) => !files.includes(p)).join(", ")}`)
          .join("; ");
  return {
    name: "CNI plugins present",
    ok: false,
    detail,
    fix: "apt-get install containernetworking-plugins (Kubernetes nodes: ambit's CNI plugin chains after bridge/host-local)",
  };
}

export function checkCommand(cmd: string, found: string | undefined, pkg: string): CheckResult {
  return found
    ? { name: `${cmd} found (${found})`, ok: true }
    : { name: `${cmd} found`, ok: false, fix: `apt-get install ${pkg}` };
}

export function checkPort(port: number, free: boolean): CheckResult {
  const name = `port ${port} free on 127.0.0.1`;
  return free
    ? { name, ok: true }
    : {
        name,
        ok: false,
        fix: `stop what listens on ${port} (ss -ltnp 'sport = :${port}') before running 'ambit controller' on this host`,
      };
}

/** The scratch-namespace capture probe's outcome (error: what iptables or ip said). */
export function checkCaptureProbe(error: string | undefined): CheckResult {
  const name = "capture rules (REDIRECT, mark, connmark, CONNMARK, fwmark route) in a scratch namespace";
  if (error === undefined) return { name, ok: true };
  const mod = /(?:target|match|extension)\s+`?([A-Za-z_]+)'?/i.exec(error)?.[1];
  return {
    name,
    ok: false,
    detail: error.split("\n").find((l) => l.trim()) ?? error,
    fix: mod
      ? `the kernel lacks iptables' ${mod}: modprobe xt_${mod.toLowerCase()} (or nft_compat), or use a kernel with it`
      : "load nf_tables/nf_nat and xt_connmark, xt_mark, xt_REDIRECT (modprobe), or install iptables with the nf_tables backend",
  };
}

// --- probes (I/O) ---

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = `${dir}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

function listDir(dir: string): string[] | undefined {
  try {
    return fs.readdirSync(dir);
  } catch {
    return undefined;
  }
}

/** Installs ambit's capture rules in a new namespace, then deletes it; the error text, or undefined. */
export async function probeCapture(): Promise<string | undefined> {
  const { applyCapture } = await import("../../ztunnel/node-agent/capture.js");
  const name = `ambit-chk${process.pid}-probe`;
  try {
    await runCommand(["ip", "netns", "add", name]);
  } catch (e) {
    return (e as Error).message;
  }
  try {
    await runCommand(["ip", "-n", name, "link", "set", "lo", "up"]);
    await applyCapture(`/var/run/netns/${name}`);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await runCommand(["ip", "netns", "del", name], { allowFail: true });
  }
}

export interface PreflightOptions {
  /** Check the controller's ports (only when no mesh is up: a running one holds them). */
  ports: boolean;
  /** Called before each slow step (progress on a terminal). */
  step?: (what: string) => void;
}

export async function preflight(opts: PreflightOptions): Promise<CheckResult[]> {
  const step = opts.step ?? (() => undefined);
  const out: CheckResult[] = [];
  const root = process.geteuid?.() === 0;
  out.push(checkRoot(process.geteuid?.()));
  out.push(checkNode(process.versions.node));
  out.push(checkKernel(fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()));
  const pkgs: Record<string, string> = { ip: "iproute2", nsenter: "util-linux" };
  for (const cmd of ["ip", "nsenter"]) out.push(checkCommand(cmd, which(cmd), pkgs[cmd]!));
  let iptablesV: string | undefined;
  if (which("iptables")) {
    try {
      iptablesV = execFileSync("iptables", ["-V"], { stdio: "pipe", timeout: 5000 }).toString();
    } catch (e) {
      iptablesV = (e as Error).message;
    }
  }
  out.push(checkIptablesVersion(iptablesV));
  out.push(
    fs.existsSync("/proc/self/ns/net")
      ? { name: "kernel network namespaces", ok: true }
      : { name: "kernel network namespaces", ok: false, fix: "a kernel with CONFIG_NET_NS is needed" },
  );
  if (root && iptablesV !== undefined && which("ip") && which("nsenter")) {
    step("installing the capture rules in a scratch namespace");
    out.push(checkCaptureProbe(await probeCapture()));
  }
  out.push(checkCni(Object.fromEntries(CNI_DIRS.map((d) => [d, listDir(d)]))));
  if (opts.ports) {
    step("checking the controller's ports");
    for (const port of CONTROLLER_PORTS) out.push(checkPort(port, await portFree(port)));
  }
  return out;
}

// CNI as a container runtime speaks it: the network configuration list is
// data (a .conflist in the node's CNI config dir, read anew for every
// sandbox, so a plugin installed later — ambit-cni, by the ztunnel
// DaemonSet — joins the chain), and each plugin is an executable called
// with CNI_COMMAND/CNI_CONTAINERID/CNI_NETNS/CNI_IFNAME/CNI_ARGS/CNI_PATH
// and its configuration (with prevResult) on stdin.
//
// Plugins run in the node's network namespace (where the bridge lives) and
// the node's view of host paths (runInNode: its CNI dirs, its node-agent socket).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export interface CniPluginConf {
  type: string;
  [k: string]: unknown;
}

export interface CniConfList {
  cniVersion: string;
  name: string;
  plugins: CniPluginConf[];
  /** Where it was read from. */
  file?: string;
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
}

export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    message: string,
  ) {
    super(`CNI ${command} ${plugin}: ${message}`);
    this.name = "CniError";
  }
}

/** Parses a .conflist (or a single-plugin .conf) (pure). */
export function parseConfList(text: string, file: string): CniConfList {
  const raw = JSON.parse(text) as Record<string, unknown>;
  if (Array.isArray(raw.plugins)) {
    const list = raw as unknown as CniConfList;
    if (!list.name || !list.cniVersion) throw new Error(`${file}: name and cniVersion are required`);
    for (const [i, p] of list.plugins.entries())
      if (typeof p?.type !== "string") throw new Error(`${file}: plugins[${i}].type missing`);
    return { ...list, file };
  }
  if (typeof raw.type !== "string") throw new Error(`${file}: neither plugins nor type`);
  const { cniVersion, name, ...plugin } = raw as { cniVersion: string; name: string } & CniPluginConf;
  return { cniVersion, name, plugins: [plugin as CniPluginConf], file };
}

/** The first configuration in the directory, by file name, as kubelet's runtimes pick it. */
export function loadConfList(dir: string): CniConfList {
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.(conflist|conf|json)$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no CNI configuration in ${dir}`);
  const file = path.join(dir, files[0]!);
  return parseConfList(fs.readFileSync(file, "utf8"), file);
}

/** The JSON a plugin gets on stdin (pure). */
export function pluginStdin(list: CniConfList, plugin: CniPluginConf, prevResult?: CniResult): string {
  return JSON.stringify({
    ...plugin,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(prevResult ? { prevResult } : {}),
  });
}

export interface CniInvocation {
  containerId: string;
  netnsPath: string;
  ifName: string;
  /** K8S_POD_NAMESPACE etc. */
  args: Record<string, string>;
  /** Directories searched for plugin executables, in order (as the plugins' namespace sees them). */
  binDirs: string[];
  /** Where such a path is from this process (a node's view binds its own directories). */
  hostPathOf?: (p: string) => string;
}

/** Runs argv (the plugin, wrapped into the node's namespaces) with env and stdin; resolves stdout. */
export type PluginRunner = (
  argv: string[],
  env: NodeJS.ProcessEnv,
  stdin: string,
) => Promise<{ code: number; stdout: string; stderr: string }>;

export function runProcess(
  argv: string[],
  env: NodeJS.ProcessEnv,
  stdin: string,
  timeoutMs = 30_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

function findPlugin(type: string, binDirs: string[], hostPathOf = (p: string) => p): string {
  for (const d of binDirs) {
    const p = path.join(d, type);
    if (fs.existsSync(hostPathOf(p))) return p;
  }
  throw new CniError(type, "find", `no executable '${type}' in ${binDirs.join(":")}`);
}

async function callPlugin(
  command: "ADD" | "DEL" | "CHECK",
  list: CniConfList,
  plugin: CniPluginConf,
  inv: CniInvocation,
  run: PluginRunner,
  prevResult?: CniResult,
): Promise<CniResult | undefined> {
  const exe = findPlugin(plugin.type, inv.binDirs, inv.hostPathOf);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netnsPath,
    CNI_IFNAME: inv.ifName,
    CNI_ARGS: Object.entries(inv.args)
      .map(([k, v]) => `${k}=${v}`)
      .join(";"),
    CNI_PATH: inv.binDirs.join(":"),
  };
  const r = await run([exe], env, pluginStdin(list, plugin, prevResult));
  if (r.code !== 0) {
    let msg = r.stderr.trim() || r.stdout.trim();
    try {
      const e = JSON.parse(r.stdout) as { msg?: string; details?: string };
      if (e.msg) msg = `${e.msg}${e.details ? `: ${e.details}` : ""}`;
    } catch {
      // not JSON: keep the raw output
    }
    throw new CniError(plugin.type, command, `exit ${r.code}: ${msg}`);
  }
  if (command !== "ADD") return undefined;
  const out = r.stdout.trim();
  return out ? (JSON.parse(out) as CniResult) : prevResult;
}

/** ADD through every plugin in order, each getting the previous one's result; resolves the last result. */
export async function cniAdd(list: CniConfList, inv: CniInvocation, run: PluginRunner): Promise<CniResult> {
  let result: CniResult | undefined;
  for (const p of list.plugins) result = await callPlugin("ADD", list, p, inv, run, result);
  return result ?? {};
}

/** DEL through every plugin in reverse order; every plugin is called even when one fails (the first error is thrown). */
export async function cniDel(list: CniConfList, inv: CniInvocation, run: PluginRunner): Promise<void> {
  let first: unknown;
  for (const p of [...list.plugins].reverse()) {
    try {
      await callPlugin("DEL", list, p, inv, run);
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}

/** The pod's first IPv4 address (without prefix) from a CNI result (pure). */
export function resultIp(r: CniResult): string | undefined {
  const a = r.ips?.find((i) => !i.address.includes(":"));
  return a?.address.split("/")[0];
}

// Installs ambit-cni on a node: the plugin's JavaScript (and optionally a copy
// of node, for hosts without one) under <binDir>/ambit-cni.d/, the wrapper
// <binDir>/ambit-cni that the runtime executes, and the plugin appended to
// the chain of the node's primary CNI configuration. Every write is
// atomic (temp file + rename): the runtime may read the directory any time.
// The ztunnel DaemonSet runs this at start (ztunnel/node-agent/zds-install.ts)
// and keeps the entry in place when the cluster's network plugin rewrites its
// file; uninstall reverses it.
import {
  chmod,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";
import {
  AMBIT_PLUGIN_TYPE,
  type AmbitPluginConf,
  addAmbitPlugin,
  pickPrimaryConfig,
  removeAmbitPlugin,
} from "./conflist.js";
import { writeFileAtomic } from "../core/files/write-atomic.js";

export const PLUGIN_DIR_NAME = "ambit-cni.d";

export interface CniInstallOptions {
  /** The node's CNI plugin directory (/opt/cni/bin, seen from ztunnel as /host/opt/cni/bin). */
  binDir: string;
  /** The node's CNI configuration directory (/etc/cni/net.d). */
  confDir: string;
  /** The node agent socket the plugin dials (a host path). */
  socketPath: string;
  /** The compiled plugin: the directory holding main.js (dist/cni). */
  sourceDir: string;
  /** The node binary the wrapper runs (default: this process's). */
  node?: string;
  /** Copy `node` into <binDir>/ambit-cni.d/ and run that (hosts without node). */
  copyNode?: boolean;
  /** Path the wrapper uses for <binDir> on the host, when it differs from `binDir` here (a hostPath mount). */
  hostBinDir?: string;
  timeoutSeconds?: number;
  logFile?: string;
}

export interface CniInstallResult {
  wrapper: string;
  /** The configuration file now holding ambit-cni; undefined when the node has none yet. */
  configFile: string | undefined;
  configChanged: boolean;
}

/** The wrapper's text: exec node on the plugin. */
export function wrapperScript(node: string, mainJs: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\n# ambit-cni: the ambit CNI plugin (chained). Installed by ambit's ztunnel.\nexec ${q(node)} ${q(mainJs)} "$@"\n`;
}

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.size === sb.size && Math.trunc(sa.mtimeMs) === Math.trunc(sb.mtimeMs);
  } catch {
    return false;
  }
}

/** Writes <binDir>/ambit-cni running `node mainJs`. Returns the wrapper's path. */
export async function writeCniWrapper(
  binDir: string,
  opts: { node: string; mainJs: string },
): Promise<string> {
  await mkdir(binDir, { recursive: true });
  const wrapper = join(binDir, AMBIT_PLUGIN_TYPE);
  await writeFileAtomic(wrapper, wrapperScript(opts.node, opts.mainJs), 0o755);
  return wrapper;
}

/** Copies the plugin (and node) and writes the wrapper. */
export async function installCniBinary(opts: CniInstallOptions): Promise<string> {
  const dir = join(opts.binDir, PLUGIN_DIR_NAME);
  const hostDir = join(opts.hostBinDir ?? opts.binDir, PLUGIN_DIR_NAME);
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(opts.sourceDir)) {
    if (!f.endsWith(".js")) continue;
    await writeFileAtomic(join(dir, f), await readFile(join(opts.sourceDir, f)));
  }
  // ESM: the copied files need a package.json saying so.
  await writeFileAtomic(join(dir, "package.json"), '{"type":"module"}\n');
  let node = opts.node ?? process.execPath;
  if (opts.copyNode) {
    const target = join(dir, "node");
    if (!(await sameFile(node, target))) {
      const tmp = `${target}.tmp-${process.pid}`;
      await copyFile(node, tmp);
      await chmod(tmp, 0o755);
      // The source's mtime, so that the next start sees the same file and skips the copy.
      const { atime, mtime } = await stat(node);
      await utimes(tmp, atime, mtime);
      await rename(tmp, target);
    }
    node = join(hostDir, "node");
  }
  return writeCniWrapper(opts.binDir, { node, mainJs: join(hostDir, "main.js") });
}

export function pluginConf(
  opts: Pick<CniInstallOptions, "socketPath" | "timeoutSeconds" | "logFile">,
): AmbitPluginConf {
  return {
    type: AMBIT_PLUGIN_TYPE,
    socketPath: opts.socketPath,
    ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
    ...(opts.logFile ? { logFile: opts.logFile } : {}),
  };
}

/**
 * Adds ambit-cni to the node's primary configuration (idempotent). A .conf
 * is replaced by the equivalent .conflist. Undefined when no configuration
 * exists yet (the cluster's network plugin has not written it): call again.
 */
export async function chainIntoPrimaryConfig(
  confDir: string,
  plugin: AmbitPluginConf,
): Promise<{ file: string; changed: boolean } | undefined> {
  let names: string[];
  try {
    names = await readdir(confDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const primary = pickPrimaryConfig(names);
  if (!primary) return undefined;
  const text = await readFile(join(confDir, primary), "utf8");
  const edited = addAmbitPlugin(primary, text, plugin);
  if (edited.changed) {
    await writeFileAtomic(join(confDir, edited.fileName), edited.text);
    if (edited.fileName !== primary) await unlink(join(confDir, primary)).catch(() => {});
  }
  return { file: join(confDir, edited.fileName), changed: edited.changed };
}

export async function installCni(opts: CniInstallOptions): Promise<CniInstallResult> {
  const wrapper = await installCniBinary(opts);
  const r = await chainIntoPrimaryConfig(opts.confDir, pluginConf(opts));
  return { wrapper, configFile: r?.file, configChanged: r?.changed ?? false };
}

/** Takes ambit-cni out of every configuration file, then removes the wrapper and its directory. */
export async function uninstallCni(opts: { binDir: string; confDir: string }): Promise<string[]> {
  const edited: string[] = [];
  let names: string[] = [];
  try {
    names = await readdir(opts.confDir);
  } catch {
    // No configuration directory: nothing chained.
  }
  for (const name of names) {
    if (!name.endsWith(".conflist")) continue;
    const file = join(opts.confDir, name);
    try {
      const r = removeAmbitPlugin(name, await readFile(file, "utf8"));
      if (r.changed) {
        await writeFileAtomic(file, r.text);
        edited.push(file);
      }
    } catch {
      // Not ours to judge: a broken file of another plugin stays as it is.
    }
  }
  // The configuration first: a chain naming a missing binary fails every pod.
  await rm(join(opts.binDir, AMBIT_PLUGIN_TYPE), { force: true });
  await rm(join(opts.binDir, PLUGIN_DIR_NAME), { recursive: true, force: true });
  return edited;
}

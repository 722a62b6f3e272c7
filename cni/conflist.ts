// Adding ambit-cni to a node's CNI configuration, and taking it out again:
// pure functions over the file's text (the installer in cni/install.ts does
// the I/O). The runtime uses the first file of its config directory in
// lexical order (libcni: *.conf, *.conflist, *.json); ambit-cni is appended
// to that file's plugin chain, after the plugins that give the pod its IP.

export const AMBIT_PLUGIN_TYPE = "ambit-cni";

export class ConflistError extends Error {
  readonly code = "CNI_CONFLIST";
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "ConflistError";
  }
}

export interface AmbitPluginConf {
  type: typeof AMBIT_PLUGIN_TYPE;
  socketPath: string;
  timeoutSeconds?: number;
  logFile?: string;
}

const CONFIG_EXTENSIONS = [".conf", ".conflist", ".json"];

/** The config file the runtime uses: the lexically first with a CNI extension. */
export function pickPrimaryConfig(fileNames: string[]): string | undefined {
  return fileNames.filter((f) => CONFIG_EXTENSIONS.some((e) => f.endsWith(e))).sort()[0];
}

type Json = Record<string, unknown>;

function parse(text: string, file: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConflistError(file, `not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new ConflistError(file, "must be a JSON object");
  return v as Json;
}

/** A single-plugin .conf turned into the list form; a list returned as is. */
function asList(conf: Json, file: string): Json {
  if (Array.isArray(conf.plugins)) return conf;
  if (conf.plugins !== undefined) throw new ConflistError(file, "plugins: must be a list");
  if (typeof conf.type !== "string")
    throw new ConflistError(file, "neither a plugin list (plugins) nor a plugin (type)");
  const { cniVersion, name, ...plugin } = conf;
  return { cniVersion, name, plugins: [plugin] };
}

export interface EditedConfig {
  /** The file to write (a .conf becomes a .conflist beside it). */
  fileName: string;
  text: string;
  /** False when the file already had exactly this content. */
  changed: boolean;
}

/**
 * Appends ambit-cni (replacing an earlier ambit-cni entry, so a changed
 * socket path applies) to the chain of `fileName`'s configuration.
 */
export function addAmbitPlugin(fileName: string, text: string, plugin: AmbitPluginConf): EditedConfig {
  const list = asList(parse(text, fileName), fileName);
  const plugins = (list.plugins as unknown[]).filter((p) => (p as Json)?.type !== AMBIT_PLUGIN_TYPE);
  if (plugins.length === 0) throw new ConflistError(fileName, "no plugin to chain after");
  const out = { ...list, plugins: [...plugins, { ...plugin }] };
  const newText = `${JSON.stringify(out, null, 2)}\n`;
  const newName = fileName.endsWith(".conflist")
    ? fileName
    : `${fileName.replace(/\.(conf|json)$/, "")}.conflist`;
  return { fileName: newName, text: newText, changed: newName !== fileName || newText !== text };
}

/** Removes every ambit-cni entry; the rest of the file keeps its content. */
export function removeAmbitPlugin(fileName: string, text: string): EditedConfig {
  const conf = parse(text, fileName);
  if (!Array.isArray(conf.plugins)) return { fileName, text, changed: false };
  const plugins = (conf.plugins as unknown[]).filter((p) => (p as Json)?.type !== AMBIT_PLUGIN_TYPE);
  if (plugins.length === conf.plugins.length) return { fileName, text, changed: false };
  return { fileName, text: `${JSON.stringify({ ...conf, plugins }, null, 2)}\n`, changed: true };
}

/** Whether the configuration's chain holds ambit-cni. */
export function hasAmbitPlugin(fileName: string, text: string): boolean {
  const conf = parse(text, fileName);
  return Array.isArray(conf.plugins) && conf.plugins.some((p) => (p as Json)?.type === AMBIT_PLUGIN_TYPE);
}

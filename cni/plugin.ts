// The CNI plugin's logic (CNI spec 1.x, chained): from the CNI_* environment
// and the network configuration on stdin to what goes to stdout and the exit
// code. The node agent is reached through `exchange` (a parameter, so the
// decisions here are testable without a socket; the tests use a real one).
//
// Failure policy (documented in the README):
//   - the agent's socket is absent or refuses (ztunnel not running): the
//     plugin has no API access, so it reads the enrolled-namespaces file the
//     agent keeps beside its socket (cni/enrolled-namespaces.ts). A pod whose
//     namespace is listed: the ADD fails (fail CLOSED, code 11 tryAgainLater)
//     and the runtime retries the sandbox until ztunnel is back. Not listed,
//     or no file (a node where ztunnel never ran): the pod starts uncaptured
//     (fail OPEN); failing closed for every pod would stop the node, the
//     mesh's own controller included. ambit-system is never blocked. Not
//     seen: a pod enrolled by its own label (istio.io/dataplane-mode=ambient)
//     in a namespace not listed fails open; a pod that opts out by label in a
//     listed namespace waits for ztunnel too. The list is the agent's last
//     view: a namespace enrolled while ztunnel was down is not in it. For the
//     pods that fail open, ztunnel captures them when it starts (netns
//     scan); until then STRICT PeerAuthentication at the destinations
//     refuses their plain text.
//   - the agent was reached and answered an error, or no answer in time
//     (an enrolled pod whose capture failed): the ADD fails (fail CLOSED),
//     the runtime retries the sandbox.
//   - DEL and CHECK never fail because of the agent (DEL must be idempotent).
import type { AgentReply } from "./agent-client.js";
import { enrolledNamespacesPath, MESH_NAMESPACE, readEnrolledNamespaces } from "./enrolled-namespaces.js";
import type { WireRequest } from "./wire.js";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
export const DEFAULT_SOCKET = "/var/run/ambit/node-agent.sock";
export const DEFAULT_TIMEOUT_SECONDS = 30;

/** CNI's well-known error codes (spec: "Error" section) and ours (>= 100). */
export const CniErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  invalidEnv: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  agentRefused: 100,
  agentUnreachable: 101,
} as const;

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** The node agent's Unix socket (default /var/run/ambit/node-agent.sock). */
  socketPath?: string;
  /** How long ADD waits for the agent's ack (default 30). */
  timeoutSeconds?: number;
  /** Append one JSON line per invocation here (debugging). */
  logFile?: string;
  prevResult?: Record<string, unknown>;
}

export interface CniOutcome {
  stdout: string;
  exitCode: number;
  /** One line for the log file, when the invocation did something worth telling. */
  log?: Record<string, unknown>;
}

export type Exchange = (socketPath: string, req: WireRequest, timeoutMs: number) => Promise<AgentReply>;

class CniFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = "",
  ) {
    super(message);
  }
}

/** Parses `K=V;K=V` (CNI_ARGS). */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** The addresses in a CNI result (0.3.0+: `ips[].address` = "ip/prefix"). */
export function resultIps(result: Record<string, unknown> | undefined): string[] {
  const ips = result?.ips;
  if (!Array.isArray(ips)) return [];
  const out: string[] = [];
  for (const entry of ips) {
    const addr = (entry as { address?: unknown })?.address;
    if (typeof addr === "string" && addr.includes("/")) out.push(addr.slice(0, addr.indexOf("/")));
  }
  return out;
}

function parseConf(stdin: string): NetConf {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (e) {
    throw new CniFailure(
      CniErrorCode.decodeFailure,
      "network configuration is not JSON",
      (e as Error).message,
    );
  }
  const c = conf as Partial<NetConf> | null;
  if (!c || typeof c !== "object" || Array.isArray(c))
    throw new CniFailure(CniErrorCode.decodeFailure, "network configuration must be a JSON object");
  if (typeof c.cniVersion !== "string")
    throw new CniFailure(CniErrorCode.invalidConfig, "network configuration: cniVersion: must be a string");
  if (!SUPPORTED_VERSIONS.includes(c.cniVersion))
    throw new CniFailure(
      CniErrorCode.incompatibleVersion,
      `network configuration: cniVersion: ${c.cniVersion} is not supported`,
      `supported: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  if (c.socketPath !== undefined && (typeof c.socketPath !== "string" || c.socketPath === ""))
    throw new CniFailure(
      CniErrorCode.invalidConfig,
      "network configuration: socketPath: must be a non-empty string",
    );
  if (c.timeoutSeconds !== undefined && !(typeof c.timeoutSeconds === "number" && c.timeoutSeconds > 0))
    throw new CniFailure(
      CniErrorCode.invalidConfig,
      "network configuration: timeoutSeconds: must be a positive number",
    );
  if (c.prevResult !== undefined && (typeof c.prevResult !== "object" || c.prevResult === null))
    throw new CniFailure(CniErrorCode.invalidConfig, "network configuration: prevResult: must be an object");
  return c as NetConf;
}

function need(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new CniFailure(CniErrorCode.invalidEnv, `${name} is not set`);
  return v;
}

/** What ADD prints: the previous result, unchanged (an empty one when the plugin runs first). */
function passThrough(conf: NetConf): string {
  const result = conf.prevResult ?? { interfaces: [], ips: [] };
  return JSON.stringify({ ...result, cniVersion: conf.cniVersion });
}

function errorOutput(version: string, f: CniFailure): string {
  return JSON.stringify({
    cniVersion: version,
    code: f.code,
    msg: f.message,
    ...(f.details ? { details: f.details } : {}),
  });
}

/** Runs one invocation. Never throws: failures become a CNI error on stdout and exit code 1. */
export async function runPlugin(
  env: NodeJS.ProcessEnv,
  stdin: string,
  exchange: Exchange,
): Promise<CniOutcome> {
  const command = env.CNI_COMMAND ?? "";
  let version = "1.0.0";
  try {
    if (command === "VERSION") {
      const requested = safeVersion(stdin);
      return {
        stdout: JSON.stringify({ cniVersion: requested ?? "1.0.0", supportedVersions: SUPPORTED_VERSIONS }),
        exitCode: 0,
      };
    }
    const conf = parseConf(stdin);
    version = conf.cniVersion;
    switch (command) {
      case "ADD":
        return await add(env, conf, exchange);
      case "DEL":
        return await del(env, conf, exchange);
      case "CHECK":
      case "STATUS":
      case "GC":
        return { stdout: "", exitCode: 0 };
      default:
        throw new CniFailure(
          CniErrorCode.invalidEnv,
          `CNI_COMMAND: '${command}' is not one of ADD, DEL, CHECK, VERSION`,
        );
    }
  } catch (e) {
    const f = e instanceof CniFailure ? e : new CniFailure(CniErrorCode.ioFailure, (e as Error).message);
    return { stdout: errorOutput(version, f), exitCode: 1, log: { command, error: f.message, code: f.code } };
  }
}

function safeVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

function podOf(env: NodeJS.ProcessEnv): { uid: string; name: string; namespace: string } | undefined {
  const args = parseCniArgs(env.CNI_ARGS);
  const name = args.K8S_POD_NAME;
  const namespace = args.K8S_POD_NAMESPACE;
  if (!name || !namespace) return undefined;
  return { uid: args.K8S_POD_UID ?? "", name, namespace };
}

async function add(env: NodeJS.ProcessEnv, conf: NetConf, exchange: Exchange): Promise<CniOutcome> {
  const containerId = need(env, "CNI_CONTAINERID");
  const netnsPath = need(env, "CNI_NETNS");
  const ifname = need(env, "CNI_IFNAME");
  const stdout = passThrough(conf);
  const pod = podOf(env);
  // Not a Kubernetes pod (no K8S_POD_* in CNI_ARGS): nothing for the mesh.
  if (!pod) return { stdout, exitCode: 0 };
  const socketPath = conf.socketPath ?? DEFAULT_SOCKET;
  const timeoutMs = (conf.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
  const ips = resultIps(conf.prevResult);
  let reply: AgentReply;
  try {
    reply = await exchange(
      socketPath,
      { kind: "add", pod, netnsPath, ips, containerId, interface: ifname },
      timeoutMs,
    );
  } catch (e) {
    throw new CniFailure(
      CniErrorCode.tryAgainLater,
      `ambit node agent did not confirm pod ${pod.namespace}/${pod.name}`,
      (e as Error).message,
    );
  }
  const podKey = `${pod.namespace}/${pod.name}`;
  if (reply === "absent") {
    const file = enrolledNamespacesPath(socketPath);
    const enrolled = readEnrolledNamespaces(file);
    if (pod.namespace !== MESH_NAMESPACE && enrolled?.has(pod.namespace))
      throw new CniFailure(
        CniErrorCode.tryAgainLater,
        `pod ${podKey} is in a namespace enrolled in the ambit mesh, and ztunnel is not running on this node: retry once it is`,
        `node agent socket ${socketPath} absent or refusing; ${file} lists ${pod.namespace}`,
      );
    return { stdout, exitCode: 0, log: { command: "ADD", pod: podKey, agent: "absent" } };
  }
  if (reply.error)
    throw new CniFailure(CniErrorCode.agentRefused, `ambit node agent refused pod ${podKey}`, reply.error);
  return { stdout, exitCode: 0, log: { command: "ADD", pod: podKey, ips, captured: reply.captured } };
}

async function del(env: NodeJS.ProcessEnv, conf: NetConf, exchange: Exchange): Promise<CniOutcome> {
  const pod = podOf(env);
  if (!pod) return { stdout: "", exitCode: 0 };
  const podKey = `${pod.namespace}/${pod.name}`;
  const socketPath = conf.socketPath ?? DEFAULT_SOCKET;
  const timeoutMs = (conf.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
  try {
    const reply = await exchange(
      socketPath,
      { kind: "del", pod, containerId: env.CNI_CONTAINERID ?? "", netnsPath: env.CNI_NETNS ?? "" },
      timeoutMs,
    );
    const outcome = reply === "absent" ? "agent absent" : reply.error || "ok";
    return { stdout: "", exitCode: 0, log: { command: "DEL", pod: podKey, outcome } };
  } catch (e) {
    // DEL must succeed: the runtime retries a failed DEL forever.
    return { stdout: "", exitCode: 0, log: { command: "DEL", pod: podKey, outcome: (e as Error).message } };
  }
}

// ambit-cni: the chained CNI plugin that hands each new pod's network
// namespace to the node agent (ztunnel) and waits for its ack.
//
// How to invoke (CNI spec 1.x; it is one entry of a .conflist "plugins" list,
// after the plugins that give the pod its interface and IP):
//   {"type": "ambit-cni", "socketPath": "/var/run/ambit/node-agent.sock"}
// The runtime (or a test) runs the executable `ambit-cni` from CNI_PATH with
//   CNI_COMMAND=ADD|DEL|CHECK|VERSION CNI_CONTAINERID=... CNI_NETNS=/var/run/netns/x
//   CNI_IFNAME=eth0 CNI_ARGS="K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=..."
// and the network configuration (with prevResult) on stdin. ADD prints the
// prevResult back; errors are CNI error JSON ({code, msg, details}) with exit 1.
// `ambit-cni` is a shell wrapper (cni/install.ts: writeCniWrapper) that execs
//   node <dir>/dist/cni/main.js
// Options in the plugin's config: socketPath, timeoutSeconds, logFile.
//
// Imports only node: built-ins and cni/ files: it starts in ~40 ms.
import { appendFileSync } from "node:fs";
import { exchange } from "./agent-client.js";
import { runPlugin } from "./plugin.js";

async function readStdin(): Promise<string> {
  if (process.env.CNI_COMMAND === "VERSION" && process.stdin.isTTY) return "";
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function logFileOf(stdin: string): string | undefined {
  try {
    const f = (JSON.parse(stdin) as { logFile?: unknown }).logFile;
    return typeof f === "string" && f !== "" ? f : undefined;
  } catch {
    return undefined;
  }
}

const stdin = await readStdin();
const outcome = await runPlugin(process.env, stdin, exchange);
if (outcome.log) {
  const file = logFileOf(stdin);
  if (file) {
    try {
      appendFileSync(
        file,
        `${JSON.stringify({ time: new Date().toISOString(), container: process.env.CNI_CONTAINERID, ...outcome.log })}\n`,
      );
    } catch {
      // A log that cannot be written never fails the pod.
    }
  }
}
if (outcome.stdout) process.stdout.write(outcome.stdout);
process.exitCode = outcome.exitCode;

// Shared by the test/k8s end-to-end tier: a real control plane (with
// scheduler and controller manager) bound on the test fabric, N test nodes
// from the node host, workloads as YAML, and ways in (exec in a pod, HTTP
// from a pod, tcpdump on the inter-node link).
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Test } from "tap";
import { type Cluster, clusterUnavailableReason, startCluster } from "./cluster.js";
import { NodeHost, TestFabric } from "./node-host/node-host.js";

export const root = process.cwd();

/** Why the tier cannot run here (tests skip with it). */
export function e2eUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  if (!fs.existsSync("/usr/lib/cni/bridge")) return "CNI plugins missing: run scripts/setup-system.sh";
  return clusterUnavailableReason();
}

export interface E2e {
  cluster: Cluster;
  host: NodeHost;
  fabric: TestFabric;
  kubectl: Cluster["kubectl"];
}

/** Fabric, control plane bound on it, node host with `nodes` Ready nodes; torn down at the test's end. */
export async function startE2e(t: Test, nodes = 2): Promise<E2e> {
  const fabric = await TestFabric.create(nodes);
  let cluster: Cluster | undefined;
  let host: NodeHost | undefined;
  t.teardown(async () => {
    if (!t.passing() || process.env.AMBIT_E2E_LOGS === "1") console.error(host?.logTails());
    await host?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await fabric.destroy();
  });
  cluster = await startCluster({ bindAddress: fabric.layout.hostIp });
  host = new NodeHost({ fabric, kubeconfigPath: cluster.kubeconfigPath });
  await host.start();
  return { cluster, host, fabric, kubectl: cluster.kubectl };
}

/** Polls `check` (an API or data-plane state with no event to wait on) until it returns a value. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last ? ` (last: ${(last as Error).message})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** The one pod of a Deployment/label selector (name), once it runs on a test node. */
export async function podOf(e: E2e, namespace: string, selector: string): Promise<string> {
  return eventually(`pod ${namespace} -l ${selector}`, async () => {
    const r = await e.kubectl([
      "-n",
      namespace,
      "get",
      "pods",
      "-l",
      selector,
      "--field-selector=status.phase=Running",
      "-o",
      "jsonpath={.items[*].metadata.name}",
    ]);
    const names = r.stdout.split(" ").filter(Boolean);
    const running = names.find((n) => e.host.pod(namespace, n)?.netnsPath);
    return running;
  });
}

/** A small HTTP client run inside a pod: GET url, prints status and body; exit 0 on any HTTP answer. */
export const FETCH_JS = `
const [url, host] = process.argv.slice(1);
const http = require("node:http");
const req = http.get(url, { timeout: 5000, headers: host ? { host } : {} }, (res) => {
  let b = ""; res.setEncoding("utf8"); res.on("data", (d) => (b += d));
  res.on("end", () => { console.log(res.statusCode + " " + b.trim()); process.exit(0); });
});
req.on("timeout", () => { console.log("ERR timeout"); process.exit(2); });
req.on("error", (e) => { console.log("ERR " + e.code); process.exit(2); });
`;

/** GET from inside a pod; resolves "<status> <body>" or "ERR <code>". */
export async function httpFromPod(
  e: E2e,
  ns: string,
  pod: string,
  url: string,
  host?: string,
): Promise<string> {
  const r = await e.host.exec(ns, pod, [process.execPath, "-e", FETCH_JS, url, ...(host ? [host] : [])]);
  return r.stdout.trim() || `ERR exit ${r.code} ${r.stderr.trim().slice(0, 200)}`;
}

/** The echo server a Deployment runs: answers "<marker> <pod name>" on PORT. */
export const SERVER_JS = `
const http = require("node:http");
http.createServer((req, res) => {
  res.end((process.env.MARKER || "hello") + " " + process.env.POD_NAME + " " + req.url + "\\n");
}).listen(Number(process.env.PORT || 8080));
`;

/** Prometheus text of a node's ztunnel (metrics on 127.0.0.1:15020 in the node's namespace). */
export async function ztunnelMetrics(e: E2e, node: string): Promise<string> {
  const r = await e.host.execOnNode(node, [
    process.execPath,
    "-e",
    FETCH_JS,
    "http://127.0.0.1:15020/metrics",
  ]);
  return r.stdout;
}

/** tcpdump on the inter-node link (every port of the fabric bridge: forwarded frames do not pass br0 itself), payloads as ASCII; stop() resolves the text. */
export function captureFabric(e: E2e): { stop: () => Promise<string>; ready: Promise<void> } {
  const file = path.join(e.fabric.root, `capture-${Date.now()}.txt`);
  const out = fs.openSync(file, "w");
  const child: ChildProcess = spawn(
    "nsenter",
    [
      `--net=${e.fabric.layout.netnsPath}`,
      "--",
      "tcpdump",
      "-i",
      "any",
      "--immediate-mode",
      "-l",
      "-n",
      "-A",
      "-s",
      "0",
      "tcp",
    ],
    { stdio: ["ignore", out, "pipe"] },
  );
  fs.closeSync(out);
  let stderr = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("listening on")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`tcpdump exited ${code}`)));
  });
  ready.catch(() => undefined);
  return {
    ready,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGINT");
        await exited;
      }
      return `${fs.readFileSync(file, "latin1")}\n${stderr}`;
    },
  };
}

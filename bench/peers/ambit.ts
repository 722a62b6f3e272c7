// Peers (b) and (c): ambit's own data path on the benchmark's mesh network,
// run as `ambit up` runs it: the controller (`ambit controller`) in the
// control-plane namespace serving a small directory of YAML (namespace
// `bench` enrolled, the client and server pods), one `ambit ztunnel` per node
// namespace with in-pod capture of that node's pods. The client pod's
// connections to the server pod's IP are captured and carried over HBONE.
// Before any number is taken the harness proves that the path is tunnelled
// (ztunnel's connection counters move), so a capture that silently failed can
// never be reported as ambit.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ztunnelNodeFlags } from "../../ztunnel/launch-flags.js";
import { Proc, run, runIn, waitForPort } from "../procs.js";
import type { PodPlan, Topology } from "../topology.js";
import { BENCH_NAMESPACE } from "../topology.js";
import { APP_PORTS, directTargets, type Peer, type PeerContext, type PeerRuntime } from "./types.js";

export const CLI = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
export const XDS_PORT = 15010;
/**
 * node without NODE_OPTIONS: a test runner (tap's process tracking) adds its
 * loaders there for every child it sees spawned, which would load them into
 * the proxies and weigh on their RSS. `env` execs, so the pid stays node's.
 */
export const PLAIN_NODE = ["env", "-u", "NODE_OPTIONS", process.execPath] as const;
const ZT = { metrics: 15020, readiness: 15021 } as const;

/** The controller's input: the bench namespace enrolled, the two pods pinned to their nodes (pure). */
export function benchYaml(): string {
  const pod = (name: string, node: string, ports: number[]) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${BENCH_NAMESPACE}
  labels:
    app: ${name}
spec:
  nodeName: ${node}
  serviceAccountName: ${name}
  containers:
    - name: main
      image: bench
      command: ["sleep", "infinity"]
${ports.length ? `      ports:\n${ports.map((p) => `        - containerPort: ${p}`).join("\n")}\n` : ""}`;
  const sa = (name: string) => `apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${name}
  namespace: ${BENCH_NAMESPACE}
`;
  return [
    `apiVersion: v1
kind: Namespace
metadata:
  name: ${BENCH_NAMESPACE}
  labels:
    ambit.dev/dataplane-mode: ambient
`,
    sa("client"),
    sa("server"),
    pod("client", "node-1", []),
    pod("server", "node-2", Object.values(APP_PORTS)),
  ].join("---\n");
}

/** The files `ambit up` would write for these pods (facts, tokens, per-node pods lists) (pure). */
export function meshFiles(topo: Topology, tokens: Record<string, string>, extraPods: PodPlan[] = []) {
  const pods = [topo.clientPod, topo.serverPod, ...extraPods];
  return {
    facts: {
      pods: Object.fromEntries(pods.map((p) => [p.key, { ip: p.ip, node: p.node.name, ready: true }])),
      nodes: Object.fromEntries(topo.layout.nodes.map((n) => [n.name, { address: n.ip }])),
    },
    tokens,
    podsFiles: Object.fromEntries(
      topo.layout.nodes.map((n) => [
        n.name,
        pods
          .filter((p) => p.node.name === n.name)
          .map((p) => ({ key: p.key, netnsPath: p.netnsPath, ip: p.ip })),
      ]),
    ),
  };
}

/** Sum of a Prometheus counter (all label sets) in a text exposition. */
export function counterSum(text: string, name: string, labelFilter?: RegExp): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labelFilter && !labelFilter.test(line)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1)) || 0;
  }
  return sum;
}

let lastProbeError = "";

export async function httpGetIn(netns: string, fortio: string, url: string, timeoutSec = 3): Promise<string> {
  const r = await runIn(netns, fortio, ["curl", "-loglevel", "Error", "-timeout", `${timeoutSec}s`, url], {
    allowFail: true,
    timeoutMs: (timeoutSec + 10) * 1000,
  });
  return r.stdout;
}

export async function waitReady(
  netns: string,
  fortio: string,
  proc: Proc,
  timeoutMs: number,
  path = "/healthz/ready",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    if (!proc.running) throw new Error(`${proc.role} exited before it was ready`);
    const body = await httpGetIn(netns, fortio, `http://127.0.0.1:${ZT.readiness}${path}`);
    if (/^ready$/m.test(body)) return;
    if (Date.now() > deadline) throw new Error(`${proc.role} not ready after ${timeoutMs / 1000}s`);
    // ztunnel's readiness is an HTTP endpoint in another namespace: polled.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

async function cliAvailable(): Promise<string | undefined> {
  if (!existsSync(CLI)) return `ambit CLI not built (${CLI})`;
  const r = await run(process.execPath, [CLI, "ztunnel", "--help"], { allowFail: true, timeoutMs: 20_000 });
  if (r.code !== 0 || !/--pods-file/.test(r.stdout + r.stderr)) return "`ambit ztunnel` is not wired yet";
  const c = await run(process.execPath, [CLI, "controller", "--help"], {
    allowFail: true,
    timeoutMs: 20_000,
  });
  if (c.code !== 0 || !/--facts-file/.test(c.stdout + c.stderr)) return "`ambit controller` is not wired yet";
  return undefined;
}

/**
 * argv of a bench ztunnel after PLAIN_NODE[0] (pure): ztunnel's V8 flags as
 * every launcher applies them (AMBIT_ZTUNNEL_NODE_FLAGS overrides), and with
 * AMBIT_BENCH_CPU_PROF=DIR a V8 CPU profile written there at exit.
 */
export function ztunnelArgv(node: string, args: readonly string[], env = process.env): string[] {
  const prof = env.AMBIT_BENCH_CPU_PROF;
  return [
    ...PLAIN_NODE.slice(1),
    ...ztunnelNodeFlags(env),
    ...(prof ? ["--cpu-prof", "--cpu-prof-dir", prof, "--cpu-prof-name", `ztunnel-${node}.cpuprofile`] : []),
    CLI,
    "ztunnel",
    ...args,
  ];
}

export interface AmbitProcesses {
  ztunnels: { node: string; netns: string; proc: Proc }[];
  /** Files the processes share (tokens, facts), for further components. */
  dir: string;
  close(): Promise<void>;
}

export interface AmbitOptions {
  /** YAML for the controller (default benchYaml()). */
  yaml?: string;
  /** Pods besides the client and server (facts, pods files). */
  extraPods?: PodPlan[];
}

/** The controller and both ztunnels, ready (their readiness endpoints say so). */
export async function startAmbitProcesses(
  ctx: Pick<PeerContext, "topo" | "workDir" | "fortio">,
  opts: AmbitOptions = {},
): Promise<AmbitProcesses> {
  const { topo, workDir, fortio } = ctx;
  const dir = join(workDir, "ambit");
  const configDir = join(dir, "config");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, "bench.yaml"), opts.yaml ?? benchYaml());
  const tokens: Record<string, string> = {};
  const tokenOf = (node: string) => `bench-${topo.meshId}-${node}`;
  for (const n of topo.layout.nodes) tokens[tokenOf(n.name)] = n.name;
  const files = meshFiles(topo, tokens, opts.extraPods);
  const path = (f: string) => join(dir, f);
  writeFileSync(path("facts.json"), JSON.stringify(files.facts, null, 2));
  writeFileSync(path("tokens.json"), JSON.stringify(files.tokens, null, 2), { mode: 0o600 });
  const procs: Proc[] = [];
  const closeAll = async () => {
    for (const p of [...procs].reverse()) await p.close(5000);
    // Capture rules outlive a ztunnel by design (restart keeps capture): clear them so later peers run uncaptured.
    for (const pod of [topo.clientPod, topo.serverPod]) {
      await runIn(pod.netns, "nft", ["flush", "ruleset"], { allowFail: true });
      await runIn(pod.netns, "iptables", ["-t", "nat", "-F"], { allowFail: true });
      await runIn(pod.netns, "iptables", ["-t", "mangle", "-F"], { allowFail: true });
    }
  };
  try {
    // No access log per connection while measuring (AMBIT_BENCH_LOG_LEVEL=info to debug).
    const env = { ...process.env, AMBIT_LOG_LEVEL: process.env.AMBIT_BENCH_LOG_LEVEL ?? "warn" };
    const controller = Proc.start(
      "ambit-controller",
      topo.controlPlane.netns,
      process.execPath,
      [
        CLI,
        "controller",
        "--config-dir",
        configDir,
        "--facts-file",
        path("facts.json"),
        "--ca-dir",
        path("ca"),
        "--tokens-file",
        path("tokens.json"),
        "--xds-port",
        String(XDS_PORT),
        "--secure-port=-1",
        "--admin-port=-1",
      ],
      path("controller.log"),
      env,
    );
    procs.push(controller);
    await waitForPort(topo.clientNode.netns, topo.controlPlane.ip, XDS_PORT, {
      proc: controller,
      timeoutMs: 60_000,
    });
    const ztunnels: { node: string; netns: string; proc: Proc }[] = [];
    for (const n of topo.layout.nodes) {
      writeFileSync(path(`${n.name}.token`), tokenOf(n.name), { mode: 0o600 });
      writeFileSync(path(`${n.name}.pods.json`), JSON.stringify(files.podsFiles[n.name] ?? []));
      const zt = Proc.start(
        `ztunnel ${n.name}`,
        n.netns,
        PLAIN_NODE[0],
        ztunnelArgv(n.name, [
          "--node",
          n.name,
          "--xds",
          `${topo.controlPlane.ip}:${XDS_PORT}`,
          "--token-file",
          path(`${n.name}.token`),
          "--pods-file",
          path(`${n.name}.pods.json`),
          "--drain-seconds",
          "1",
        ]),
        path(`ztunnel-${n.name}.log`),
        env,
      );
      procs.push(zt);
      ztunnels.push({ node: n.name, netns: n.netns, proc: zt });
    }
    for (const z of ztunnels) await waitReady(z.netns, fortio, z.proc, 60_000);
    return { ztunnels, dir, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function startAmbitL4(ctx: PeerContext): Promise<PeerRuntime> {
  const a = await startAmbitProcesses(ctx);
  try {
    await proveTunnelled(ctx, a.ztunnels);
  } catch (err) {
    await a.close();
    throw err;
  }
  return {
    targets: directTargets(ctx.topo),
    measured: a.ztunnels.map((z) => ({ role: `ztunnel ${z.node}`, pid: z.proc.pid })),
    close: a.close,
  };
}

/** A request from the client pod to the server pod must show up in both ztunnels' connection counters. */
async function proveTunnelled(ctx: PeerContext, ztunnels: { node: string; netns: string }[]): Promise<void> {
  const { topo, fortio } = ctx;
  const opened = async () =>
    Promise.all(
      ztunnels.map(async (z) =>
        counterSum(
          await httpGetIn(z.netns, fortio, `http://127.0.0.1:${ZT.metrics}/metrics`),
          "istio_tcp_connections_opened_total",
        ),
      ),
    );
  const before = await opened();
  // The first connection waits for both pods' certificates (key generation, CA signing): allow it time.
  // (The echo body is random bytes: success is fortio's exit status, not the decoded text.)
  let ok = false;
  lastProbeError = "";
  for (let attempt = 0; attempt < 3 && !ok; attempt++) {
    const r = await runIn(
      topo.clientPod.netns,
      fortio,
      [
        "curl",
        "-loglevel",
        "Error",
        "-timeout",
        "15s",
        `http://${topo.serverPod.ip}:${APP_PORTS.http}/echo?size=16`,
      ],
      { allowFail: true, timeoutMs: 30_000 },
    );
    ok = r.code === 0;
    if (!ok) lastProbeError = `fortio curl exit ${r.code}: ${r.stderr.trim().slice(-300)}`;
  }
  if (!ok) {
    throw new Error(
      `ambit-l4: the client pod cannot reach the server pod through the ztunnels (${lastProbeError})`,
    );
  }
  const after = await opened();
  const moved = after.map((a, i) => a - (before[i] ?? 0));
  if (!moved.every((d) => d > 0)) {
    throw new Error(
      `ambit-l4: traffic is not going through both ztunnels (connections opened per node: ${moved.join(", ")}); not measuring a direct path as ambit`,
    );
  }
}

export const ambitL4Peer: Peer = {
  name: "ambit-l4",
  label: "ambit L4 (2 ztunnels, HBONE)",
  l7: false,
  unavailable: cliAvailable,
  start: startAmbitL4,
};

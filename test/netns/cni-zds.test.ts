// The node side of a cluster, end to end on one machine: pods' network
// namespaces set up by Debian's real CNI plugins (bridge + host-local, run
// inside a test "node" namespace), then the real ambit-cni executable in the
// chain hands each pod to ztunnel's CNI wiring (ZDS socket → enrolment
// decision from the controller's model → NodeAgent capture). An enrolled
// pod's traffic goes through ztunnel's handler before its ADD returns; a
// plain pod is left alone; DEL releases; a pod that was running before
// ztunnel is found by the netns scan.
import { spawn } from "node:child_process";
import fs from "node:fs";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { writeCniWrapper } from "../../cni/install.js";
import { destroyMeshNetwork } from "../../local/network.js";
import type { ZtunnelConfig } from "../../ztunnel/config.js";
import { NodeAgent } from "../../ztunnel/node-agent/agent.js";
import { hasCapture } from "../../ztunnel/node-agent/capture.js";
import { runCommand } from "../../ztunnel/node-agent/command.js";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { CniWiring } from "../../ztunnel/node-agent/zds-wiring.js";
import { MeshState } from "../../ztunnel/state/mesh-state.js";
import { workload } from "../unit/fixtures-ztunnel.js";
import { nameServer, needsRoot, readAll, testMeshId } from "./netns-fixture.js";

const mainJs = fileURLToPath(new URL("../../cni/main.js", import.meta.url));
const DEBIAN_CNI = "/usr/lib/cni";
const missingPlugins = fs.existsSync(path.join(DEBIAN_CNI, "bridge"))
  ? false
  : "needs Debian's containernetworking-plugins (/usr/lib/cni)";

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(argv: string[], env: Record<string, string>, stdin: string): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH ?? "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** A node namespace with a bridge network, and a way to add pods to it through a real CNI chain. */
async function testNode(t: Test) {
  const meshId = testMeshId();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cni-zds-"));
  t.teardown(async () => {
    await destroyMeshNetwork(meshId, { graceMs: 500 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const nodeNs = `ambit-${meshId}-node`;
  await runCommand(["sh", "-ec", `ip netns add ${nodeNs}\nip -n ${nodeNs} link set lo up`]);
  const ambitCni = await writeCniWrapper(path.join(dir, "bin"), { node: process.execPath, mainJs });
  const socketPath = path.join(dir, "node-agent.sock");
  const bridgeConf = {
    cniVersion: "1.0.0",
    name: "ambit-test",
    type: "bridge",
    bridge: "cni-ambit0",
    isGateway: true,
    ipam: { type: "host-local", ranges: [[{ subnet: "10.78.0.0/24" }]], dataDir: path.join(dir, "ipam") },
  };
  const ambitConf = {
    cniVersion: "1.0.0",
    name: "ambit-test",
    type: "ambit-cni",
    socketPath,
    timeoutSeconds: 20,
  };

  const env = (command: string, ns: string, pod: string, podNs: string) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: `sandbox-${pod}`,
    CNI_NETNS: ns.startsWith("/") ? ns : `/var/run/netns/${ns}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: DEBIAN_CNI,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNs};K8S_POD_NAME=${pod};K8S_POD_UID=uid-${pod}`,
  });

  return {
    meshId,
    dir,
    socketPath,
    /** Creates the pod's namespace and runs ADD as a runtime does: loopback, then bridge, then ambit-cni. */
    async addPod(pod: string, podNs: string): Promise<{ path: string; ip: string; ambit: Exec }> {
      const ns = `ambit-${meshId}-${pod}`;
      await runCommand(["ip", "netns", "add", ns]);
      // As containerd does: the loopback network first, then the pod network's chain.
      const lo = await exec(
        [path.join(DEBIAN_CNI, "loopback")],
        env("ADD", ns, pod, podNs),
        JSON.stringify({ cniVersion: "1.0.0", name: "cni-loopback", type: "loopback" }),
      );
      if (lo.code !== 0) throw new Error(`loopback ADD: ${lo.stdout} ${lo.stderr}`);
      const bridge = await exec(
        ["nsenter", `--net=/var/run/netns/${nodeNs}`, "--", path.join(DEBIAN_CNI, "bridge")],
        env("ADD", ns, pod, podNs),
        JSON.stringify(bridgeConf),
      );
      if (bridge.code !== 0) throw new Error(`bridge ADD: ${bridge.stdout} ${bridge.stderr}`);
      const prevResult = JSON.parse(bridge.stdout);
      const ambit = await exec(
        [ambitCni],
        env("ADD", ns, pod, podNs),
        JSON.stringify({ ...ambitConf, prevResult }),
      );
      const ip = String(prevResult.ips[0].address).split("/")[0]!;
      return { path: `/var/run/netns/${ns}`, ip, ambit };
    },
    /** ambit-cni alone, with a namespace path and prevResult of the test's choosing. */
    runAmbit(
      command: string,
      pod: string,
      podNs: string,
      netnsPath: string,
      prevResult?: unknown,
    ): Promise<Exec> {
      return exec(
        [ambitCni],
        env(command, netnsPath, pod, podNs),
        JSON.stringify({ ...ambitConf, prevResult }),
      );
    },
    async delPod(pod: string, podNs: string): Promise<Exec> {
      const ns = `ambit-${meshId}-${pod}`;
      const ambit = await exec([ambitCni], env("DEL", ns, pod, podNs), JSON.stringify(ambitConf));
      await exec(
        ["nsenter", `--net=/var/run/netns/${nodeNs}`, "--", path.join(DEBIAN_CNI, "bridge")],
        env("DEL", ns, pod, podNs),
        JSON.stringify(bridgeConf),
      );
      return ambit;
    },
  };
}

/** ztunnel's CNI wiring with a NodeAgent whose outbound handler answers with what it saw. */
async function ztunnelSide(t: Test, node: { socketPath: string; meshId: string }, state: MeshState) {
  const agent = new NodeAgent({
    onOutbound: (s, ctx) =>
      s.end(`ztunnel outbound ${ctx.podKey} ${ctx.origDst.address}:${ctx.origDst.port}`),
    onInbound: (s) => s.destroy(),
    onHbone: (s) => s.destroy(),
  });
  const cfg = {
    nodeName: "node-1",
    cniSocket: node.socketPath,
    cniHostBinDir: "/opt/cni/bin",
    cniCopyNode: false,
    daemonSetName: "ambit-ztunnel",
  } as ZtunnelConfig;
  let changes = 0;
  const wiring = new CniWiring({
    cfg,
    state,
    capturer: agent,
    onChange: () => changes++,
    // Only this test's namespaces: other tests on this host may use the same IPs.
    scan: { procDir: "", namePrefix: `ambit-${node.meshId}-` },
  });
  await wiring.start();
  t.teardown(async () => {
    await wiring.closeAndCheckUninstall();
    await agent.close({ removeCapture: true });
  });
  return { agent, wiring, changes: () => changes };
}

async function ask(netnsPath: string, host: string, port: number): Promise<string> {
  const s: net.Socket = await connectInNetns(netnsPath, { host, port });
  return readAll(s);
}

t.test(
  "ADD through a real CNI chain captures an enrolled pod before it returns; DEL releases",
  { skip: needsRoot || missingPlugins },
  async (t) => {
    const node = await testNode(t);
    // The controller's model as xDS delivered it: shop is enrolled, plain is not.
    // (host-local hands out .2, .3 in order.)
    const state = new MeshState();
    state.applyAddresses([
      workload({ name: "client", namespace: "shop", ip: "10.78.0.2", node: "node-1", tunnel: "hbone" }),
      workload({ name: "server", namespace: "plain", ip: "10.78.0.3", node: "node-1", tunnel: "none" }),
    ]);
    const z = await ztunnelSide(t, node, state);

    const client = await node.addPod("client", "shop");
    t.equal(client.ambit.code, 0, client.ambit.stdout);
    t.equal(client.ip, "10.78.0.2");
    t.equal(
      JSON.parse(client.ambit.stdout).ips[0].address,
      "10.78.0.2/24",
      "prevResult passed through the chain",
    );
    t.ok(await hasCapture(client.path), "capture rules in the pod's namespace when ADD returned");
    t.ok(z.agent.get("shop/client"), "ztunnel listens inside the pod");

    const server = await node.addPod("server", "plain");
    t.equal(server.ambit.code, 0, server.ambit.stdout);
    t.notOk(await hasCapture(server.path), "a pod of a namespace that is not enrolled is left alone");
    await nameServer(t, server.path, 8080, "server");

    t.equal(
      await ask(client.path, server.ip, 8080),
      `ztunnel outbound shop/client ${server.ip}:8080`,
      "the enrolled pod's connection went to ztunnel, with its original destination",
    );
    t.equal(
      await ask(server.path, client.ip, 15008).catch(() => "refused"),
      "",
      "ztunnel's HBONE port is open in the pod",
    );

    t.same(
      z.wiring.pods().map((p) => [p.key, p.ip, p.enrolHint, p.source]),
      [
        ["shop/client", "10.78.0.2", true, "cni"],
        ["plain/server", "10.78.0.3", false, "cni"],
      ],
    );

    const del = await node.delPod("client", "shop");
    t.equal(del.code, 0);
    t.notOk(await hasCapture(client.path), "DEL removed the capture");
    t.notOk(z.agent.get("shop/client"), "and ztunnel's listeners");
    t.same(
      z.wiring.pods().map((p) => p.key),
      ["plain/server"],
    );
  },
);

t.test(
  "an enrolled pod whose capture fails fails its ADD; an undecided pod waits for the model",
  { skip: needsRoot || missingPlugins },
  async (t) => {
    const node = await testNode(t);
    const state = new MeshState();
    const z = await ztunnelSide(t, node, state);
    // Not in the model and no API: undecided, the ADD succeeds without capture.
    const later = await node.addPod("later", "shop");
    t.equal(later.ambit.code, 0);
    t.notOk(await hasCapture(later.path));
    t.equal(z.wiring.pods()[0]?.enrolHint, undefined, "no decision yet");

    // Enrolled by the model, but its namespace path is wrong: the capture fails, and so does the ADD.
    state.applyAddresses([workload({ name: "broken", namespace: "shop", ip: "10.78.0.9", node: "node-1" })]);
    const broken = await node.runAmbit(
      "ADD",
      "broken",
      "shop",
      `/var/run/netns/ambit-${node.meshId}-missing`,
      {
        cniVersion: "1.0.0",
        ips: [{ address: "10.78.0.9/24" }],
      },
    );
    t.equal(broken.code, 1, "the ADD fails: the runtime retries the sandbox");
    const err = JSON.parse(broken.stdout);
    t.equal(err.code, 100);
    t.match(err.msg, /shop\/broken/);
    t.match(err.details, /missing/, "the agent's error names the namespace");
    t.notOk(
      z.wiring.pods().some((p) => p.key === "shop/broken"),
      "a pod whose capture failed is not kept",
    );
  },
);

t.test(
  "a pod running before ztunnel started is found by its IP",
  { skip: needsRoot || missingPlugins },
  async (t) => {
    const node = await testNode(t);
    // The pod is set up while no ztunnel listens: ambit-cni fails open.
    const early = await node.addPod("early", "shop");
    t.equal(early.ambit.code, 0, "no agent: the pod starts anyway (fail open)");
    t.notOk(await hasCapture(early.path));

    const state = new MeshState();
    state.applyAddresses([
      workload({ name: "early", namespace: "shop", ip: early.ip, node: "node-1", tunnel: "hbone" }),
    ]);
    const z = await ztunnelSide(t, node, state);
    await z.wiring.scanForUnknownPods([]);
    t.same(
      z.wiring.pods().map((p) => [p.key, p.netnsPath, p.ip, p.source]),
      [["shop/early", early.path, early.ip, "scan"]],
    );
    t.ok(z.changes() > 0, "the ztunnel is told to reconcile");
  },
);

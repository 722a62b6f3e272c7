// LocalRuntime end to end: components as hostNetwork pods, application pods
// on two nodes gated by readiness, the state file, `exec` and `down` from
// another process, and nothing left behind.
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import t from "tap";
import { needsRoot, readAll, testMeshId } from "./netns-fixture.js";

// tap injects NODE_OPTIONS into every child it sees spawned; keep the
// containers free of it, as they would be outside the test runner.
const node = process.execPath;
const noTap = ["env", "-u", "NODE_OPTIONS", node];
const env = [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }];
const server = (port: number, reply: string) =>
  `require("net").createServer((s) => s.on("error", () => {}).end("${reply} " + s.remoteAddress)).listen(${port}, process.env.POD_IP)`;

t.test(
  "a two-node local mesh: run, inspect, exec, down from another process",
  { skip: needsRoot },
  async (t) => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-run-"));
    process.env.AMBIT_RUN_DIR = runDir; // before the state module loads
    const { LocalRuntime, execInPod } = await import("../../local/runtime.js");
    const { readState } = await import("../../local/state.js");
    const { destroyMeshNetwork, listNetns, meshPrefix, alive } = await import("../../local/network.js");
    const { connectInNetns } = await import("../../ztunnel/node-agent/native.js");
    const meshId = testMeshId();
    t.teardown(async () => {
      await destroyMeshNetwork(meshId, { graceMs: 500 });
      fs.rmSync(runDir, { recursive: true, force: true });
    });

    const rt = await LocalRuntime.start({
      meshId,
      nodes: ["node1", "node2"],
      dir: "/examples/demo",
      runner: { backoff: { initialMs: 20, maxMs: 200 }, probeIntervalUntilReadyMs: 50, maxGraceMs: 1000 },
    });
    t.teardown(() => rt.close().catch(() => undefined));
    await t.rejects(
      LocalRuntime.start({ meshId, nodes: ["node1"] }),
      { code: "LOCAL_STATE" },
      "a second `up` of the same mesh is refused",
    );

    const ready: string[] = [];
    rt.on("pod-ready", (k: string) => ready.push(k));
    const probe = (port: number) => ({ tcpSocket: { port } });
    await rt.runPod({
      key: "ambit-system/controller",
      controlPlane: true,
      spec: {
        containers: [
          {
            name: "controller",
            command: [...noTap, "-e", server(15012, "cp")],
            env,
            readinessProbe: probe(15012),
          },
        ],
      },
    });
    await rt.runPod({
      key: "ambit-system/ztunnel-node1",
      node: "node1",
      hostNetwork: true,
      spec: {
        containers: [
          {
            name: "ztunnel",
            command: [...noTap, "-e", server(15021, "zt")],
            env,
            readinessProbe: probe(15021),
          },
        ],
      },
    });
    const web = await rt.runPod({
      key: "demo/web-0",
      node: "node2",
      spec: {
        containers: [
          { name: "web", command: [...noTap, "-e", server(8080, "web")], env, readinessProbe: probe(8080) },
        ],
      },
    });
    const client = await rt.runPod({
      key: "demo/client-0",
      node: "node1",
      spec: { containers: [{ name: "c", command: ["sleep", "600"] }] },
    });
    await Promise.all(rt.pods().map((p) => rt.whenReady(p.key)));
    t.same([...ready].sort(), [
      "ambit-system/controller",
      "ambit-system/ztunnel-node1",
      "demo/client-0",
      "demo/web-0",
    ]);
    t.equal(
      rt.pod("ambit-system/ztunnel-node1")?.ip,
      rt.layout.nodes[0]?.ip,
      "hostNetwork pods have the node's address",
    );

    // Reachability: client pod -> web pod on the other node; node -> controller.
    t.equal(
      await readAll(await connectInNetns(client.netnsPath, { host: web.ip, port: 8080 })),
      `web ${client.ip}`,
    );
    t.equal(
      await readAll(
        await connectInNetns(rt.layout.nodes[1]!.netnsPath, { host: rt.layout.controlPlane.ip, port: 15012 }),
      ),
      `cp ${rt.layout.nodes[1]!.ip}`,
    );

    // The state file tells other processes everything.
    rt.setPodInfo("demo/web-0", { enrolled: true, identity: "spiffe://cluster.local/ns/demo/sa/default" });
    const state = readState(meshId)!;
    t.equal(state.dir, "/examples/demo");
    t.same(Object.keys(state.pods).sort(), [
      "ambit-system/controller",
      "ambit-system/ztunnel-node1",
      "demo/client-0",
      "demo/web-0",
    ]);
    t.match(state.pods["demo/web-0"], { ip: web.ip, node: "node2", ready: true, enrolled: true });
    t.same(
      state.processes[0],
      { name: "owner", pid: process.pid, startTime: state.processes[0]!.startTime },
      "the owner is recorded first",
    );
    const pids = state.processes.filter((p) => p.name !== "owner").map((p) => p.pid);
    t.equal(pids.length, 4);
    t.ok(pids.every(alive));
    t.ok(fs.existsSync(rt.logFile("demo/web-0", "web")));

    // exec, via the state file.
    t.equal(
      await execInPod(meshId, "demo/web-0", ["sh", "-c", `ip -o addr | grep -q ${web.ip}`], {
        stdio: "ignore",
      }),
      0,
    );
    t.equal(
      await execInPod(meshId, "demo/web-0", ["false"], { stdio: "ignore" }),
      1,
      "exit code passed through",
    );
    await t.rejects(execInPod(meshId, "demo/nope", ["true"]), { message: /no pod demo\/nope/ });

    // A pod stopped while the mesh runs: its namespace goes, the rest stays.
    await rt.stopPod("demo/client-0");
    t.notOk(fs.existsSync(client.netnsPath));
    t.notOk(readState(meshId)!.pods["demo/client-0"]);

    // `down` by the owner itself.
    await rt.close();
    t.same(listNetns(meshPrefix(meshId)), [], "no namespace left");
    t.ok(
      pids.every((p) => !alive(p)),
      "every process ended",
    );
    t.equal(readState(meshId), undefined, "state removed");
  },
);

t.test(
  "`ambit down` from another process stops the owner, its pods and namespaces",
  { skip: needsRoot },
  async (t) => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-run-"));
    process.env.AMBIT_RUN_DIR = runDir;
    const { execInPod } = await import("../../local/runtime.js");
    const { teardownMesh } = await import("../../local/teardown.js");
    const { destroyMeshNetwork, listNetns, meshPrefix, alive } = await import("../../local/network.js");
    const meshId = testMeshId();
    t.teardown(async () => {
      await destroyMeshNetwork(meshId, { graceMs: 500 });
      fs.rmSync(runDir, { recursive: true, force: true });
    });
    const owner = spawn(node, [new URL("./runtime-owner.js", import.meta.url).pathname, meshId], {
      env: { ...process.env, AMBIT_RUN_DIR: runDir },
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.teardown(() => {
      owner.kill("SIGKILL");
    });
    const exited = once(owner, "exit");
    const [line] = (await once(createInterface({ input: owner.stdout! }), "line")) as [string];
    const { pods } = JSON.parse(line) as { pods: { key: string; ip: string; pid: number }[] };
    t.equal(pods.length, 2);
    t.equal(
      await execInPod(meshId, "demo/web-1", ["sh", "-c", `ip -o addr | grep -q ${pods[1]!.ip}`], {
        stdio: "ignore",
      }),
      0,
      "exec finds the pod through the state file",
    );

    const report = await teardownMesh(meshId, { graceMs: 2000 });
    await exited;
    t.equal(report.namespacesRemoved.length, 6, "fabric, control plane, 2 nodes, 2 pods");
    t.same(listNetns(meshPrefix(meshId)), [], "no namespace left");
    t.ok(
      pods.every((p) => !alive(p.pid)),
      "pod processes ended",
    );
    t.notOk(alive(owner.pid!), "owner ended");
    t.notOk(fs.existsSync(path.join(runDir, meshId)), "state and logs removed");
    t.same(
      await teardownMesh(meshId),
      { meshId, processesStopped: [], namespacesRemoved: [], stateRemoved: false },
      "twice is fine",
    );
  },
);

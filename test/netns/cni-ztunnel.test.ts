// ztunnel in CNI mode (--cni-socket), the whole app: a controller and two
// ztunnels in this process, pods in network namespaces. node1's ztunnel has
// no pods file: a pod that was running before it started is found by its IP
// (the controller's model lists it enrolled on node1), and pods come and go
// through the real ambit-cni executable (DEL releases, ADD captures again).
// A captured client reaches the server Service over HBONE through both
// ztunnels.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { writeCniWrapper } from "../../cni/install.js";
import { hasCapture } from "../../ztunnel/node-agent/capture.js";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { nameServer, needsRoot, readAll } from "./netns-fixture.js";
import { inProcessMesh } from "./ztunnel-fixture.js";

const mainJs = fileURLToPath(new URL("../../cni/main.js", import.meta.url));
const VIP = "10.96.7.8";

const yaml = (ips: Record<string, string>) => `
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: demo, labels: { app: client } }
spec: { nodeName: node1, containers: [{ name: c, command: ["true"] }] }
status: { podIP: ${ips["demo/client"]} }
---
apiVersion: v1
kind: Pod
metadata: { name: server, namespace: demo, labels: { app: server } }
spec:
  nodeName: node2
  containers: [{ name: s, command: ["true"], ports: [{ name: http, containerPort: 8080 }] }]
status: { podIP: ${ips["demo/server"]} }
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: demo }
spec:
  clusterIP: ${VIP}
  selector: { app: server }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

function runCni(
  exe: string,
  env: Record<string, string>,
  conf: unknown,
): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(exe, [], { env: { PATH: process.env.PATH ?? "", ...env } });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout }));
    child.stdin.end(JSON.stringify(conf));
  });
}

t.test(
  "ztunnel --cni-socket: scan at start, then DEL and ADD from the plugin",
  { skip: needsRoot },
  async (t) => {
    const mesh = await inProcessMesh(t, {
      nodes: ["node1", "node2"],
      pods: [
        { key: "demo/client", node: "node1" },
        { key: "demo/server", node: "node2" },
      ],
      yaml,
    });
    const client = mesh.pods["demo/client"]!;
    const server = mesh.pods["demo/server"]!;
    await nameServer(t, server.netnsPath, 8080, "server");
    await mesh.startZtunnel("node2");

    // Only this mesh's namespaces are scanned: other tests on this host reuse the same pod IPs.
    const before = process.env.AMBIT_CNI_SCAN_PREFIX;
    process.env.AMBIT_CNI_SCAN_PREFIX = `ambit-${mesh.meshId}-`;
    t.teardown(() => {
      if (before === undefined) delete process.env.AMBIT_CNI_SCAN_PREFIX;
      else process.env.AMBIT_CNI_SCAN_PREFIX = before;
    });
    const socketPath = path.join(mesh.dir, "node1-agent.sock");
    const z1 = await mesh.startZtunnel("node1", { pods: [], args: ["--cni-socket", socketPath] });
    t.ok(z1.agent.get("demo/client"), "the running pod was found by its IP and captured at start");
    t.ok(await hasCapture(client.netnsPath));

    const call = async () => readAll(await connectInNetns(client.netnsPath, { host: VIP, port: 80 }));
    t.equal(await call(), `server ${client.ip}`, "client → Service over HBONE, the client's IP kept");

    const exe = await writeCniWrapper(path.join(mesh.dir, "cni-bin"), { node: process.execPath, mainJs });
    const env = (command: string) => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: "sandbox-client",
      CNI_NETNS: client.netnsPath,
      CNI_IFNAME: "eth0",
      CNI_ARGS: "K8S_POD_NAMESPACE=demo;K8S_POD_NAME=client;K8S_POD_UID=u1",
    });
    const conf = { cniVersion: "1.0.0", name: "podnet", type: "ambit-cni", socketPath };

    const del = await runCni(exe, env("DEL"), conf);
    t.equal(del.code, 0);
    t.notOk(z1.agent.get("demo/client"), "DEL released the pod");
    t.notOk(await hasCapture(client.netnsPath));

    const prevResult = { cniVersion: "1.0.0", ips: [{ address: `${client.ip}/32` }] };
    const add = await runCni(exe, env("ADD"), { ...conf, prevResult });
    t.equal(add.code, 0, add.stdout);
    t.same(JSON.parse(add.stdout), prevResult);
    t.ok(z1.agent.get("demo/client"), "ADD captured it again before returning");
    t.ok(await hasCapture(client.netnsPath));
    t.equal(await call(), `server ${client.ip}`, "and traffic flows through the mesh again");
    t.ok(fs.existsSync(socketPath));
  },
);

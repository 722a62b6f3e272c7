// An in-process mesh for the ztunnel netns tests: node and pod namespaces
// (MeshNetwork), a controller reading a YAML directory, and ztunnels started
// on demand in this process, each capturing its node's pods in-pod. Two
// instances for one node may run at once (an upgrade): they share the pods'
// ports through SO_REUSEPORT, as two processes would. Everything is closed
// and removed at teardown, also when the test fails.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";
import { MeshNetwork } from "../../local/mesh-network.js";
import { destroyMeshNetwork } from "../../local/network.js";
import { ZtunnelApp } from "../../ztunnel/app.js";
import { parseZtunnelConfig } from "../../ztunnel/config.js";
import { testMeshId } from "./netns-fixture.js";

export interface FixturePod {
  key: string;
  node: string;
  netnsPath: string;
  ip: string;
}

export interface InProcessMesh {
  meshId: string;
  dir: string;
  /** The controller's config directory: write YAML here to change the mesh (then await `once(controller, "synced")`). */
  cfgDir: string;
  controller: ControllerApp;
  pods: Record<string, FixturePod>;
  /**
   * Starts a ztunnel for `node` capturing `pods` (default: every pod of the
   * node); resolves once ready. Closed at teardown unless `stopped()` first.
   */
  startZtunnel(node: string, opts?: { pods?: FixturePod[]; args?: string[] }): Promise<ZtunnelApp>;
  /** Tells the fixture a ztunnel was closed by the test. */
  stopped(z: ZtunnelApp): void;
}

export interface InProcessMeshOptions {
  nodes: string[];
  pods: { key: string; node: string }[];
  /** The mesh YAML, given each pod's IP by key. */
  yaml: (ips: Record<string, string>) => string;
}

export async function inProcessMesh(t: Test, opts: InProcessMeshOptions): Promise<InProcessMesh> {
  const meshId = testMeshId();
  t.teardown(() => destroyMeshNetwork(meshId, { graceMs: 500 }).then(() => undefined));
  const net = await MeshNetwork.create({ meshId, nodes: opts.nodes });
  const pods: Record<string, FixturePod> = {};
  for (const p of opts.pods) {
    const pod = await net.addPod({ key: p.key, node: p.node });
    pods[p.key] = { key: p.key, node: p.node, netnsPath: pod.netnsPath, ip: pod.ip };
  }

  const dir = await mkdtemp(join(tmpdir(), "ambit-ztunnel-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cfgDir = join(dir, "config");
  await mkdir(cfgDir);
  const ips = Object.fromEntries(Object.values(pods).map((p) => [p.key, p.ip]));
  await writeFile(join(cfgDir, "mesh.yaml"), opts.yaml(ips));
  const tokens = Object.fromEntries(opts.nodes.map((n) => [tokenOf(n), n]));
  await writeFile(join(dir, "tokens.json"), JSON.stringify(tokens));
  const ccfg = parseControllerConfig([
    "--config-dir",
    cfgDir,
    "--ca-dir",
    join(dir, "ca"),
    "--tokens-file",
    join(dir, "tokens.json"),
    "--listen",
    "127.0.0.1",
    "--xds-port",
    "0",
    "--secure-port=-1",
    "--admin-port=-1",
  ]);
  if (ccfg === "help") throw new Error("help");
  const controller = new ControllerApp(ccfg);
  await controller.start();
  t.teardown(() => controller.close());

  const running = new Set<ZtunnelApp>();
  t.teardown(() => Promise.all([...running].map((z) => z.close(200))));
  let instance = 0;
  const startZtunnel: InProcessMesh["startZtunnel"] = async (node, o = {}) => {
    const mine = o.pods ?? Object.values(pods).filter((p) => p.node === node);
    // One pods file per instance: an upgrade's two instances read their own.
    const podsFile = join(dir, `${node}-pods-${instance++}.json`);
    await writeFile(
      podsFile,
      JSON.stringify(mine.map((p) => ({ key: p.key, netnsPath: p.netnsPath, ip: p.ip }))),
    );
    await writeFile(join(dir, `${node}.token`), `${tokenOf(node)}\n`);
    const zcfg = parseZtunnelConfig([
      "--node",
      node,
      "--xds",
      `127.0.0.1:${controller.ports.xds}`,
      "--token-file",
      join(dir, `${node}.token`),
      "--pods-file",
      podsFile,
      "--admin-port=-1",
      "--metrics-port=-1",
      "--readiness-port=-1",
      ...(o.args ?? []),
    ]);
    if (zcfg === "help") throw new Error("help");
    const z = new ZtunnelApp(zcfg);
    running.add(z);
    await z.start();
    return z;
  };
  return { meshId, dir, cfgDir, controller, pods, startZtunnel, stopped: (z) => running.delete(z) };
}

function tokenOf(node: string): string {
  return `${node}-token-0123456789abcdef`;
}

/**
 * The two-node topology the in-process tests share: `demo` (enrolled) with a
 * client on node1 and a server on node2 behind a Service at `vip` (server port
 * 8080 named `portName`, Service port 80), plus, with `outsider`, a pod of the
 * unenrolled namespace `plain` on node1.
 */
export function twoNodeDemoYaml(
  ips: Record<string, string>,
  opts: { vip: string; portName: string; outsider: boolean },
): string {
  const plain = opts.outsider
    ? `---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: plain }
spec: { nodeName: node1, containers: [{ name: o, command: ["true"] }] }
status: { podIP: ${ips["plain/outsider"]} }
`
    : "";
  return `
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: server, namespace: demo }
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
  serviceAccountName: server
  containers: [{ name: s, command: ["true"], ports: [{ name: ${opts.portName}, containerPort: 8080 }] }]
status: { podIP: ${ips["demo/server"]} }
${plain}---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: demo }
spec:
  clusterIP: ${opts.vip}
  selector: { app: server }
  ports: [{ name: ${opts.portName}, port: 80, targetPort: ${opts.portName} }]
`;
}

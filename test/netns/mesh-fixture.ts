// The YAML of the mesh tests: namespace `mesh` (enrolled) and `plain` (not),
// each with an echo server pinned to node-2 and an idle client pinned to
// node-1. The echo server answers `echo:<what it read>`.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";
import { destroyMeshNetwork } from "../../local/network.js";
import { testMeshId } from "./netns-fixture.js";

const cliMain = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `ambit ARGS` as a user would (without tap's NODE_OPTIONS), against the mesh state under runDir; `uid`: as that user. */
export function ambit(
  runDir: string,
  args: string[],
  timeoutMs = 120_000,
  opts: { uid?: number } = {},
): Promise<CliResult> {
  const env = { ...process.env, AMBIT_RUN_DIR: runDir, NODE_OPTIONS: "" };
  const user = opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {};
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliMain, ...args],
      { env, timeout: timeoutMs, maxBuffer: 16 << 20, ...user },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export interface TestMeshDirs {
  /** AMBIT_RUN_DIR of the mesh (state, sockets, logs). */
  runDir: string;
  /** Where the test writes the YAML that `ambit up` reads. */
  dir: string;
  meshId: string;
}

/**
 * A run dir, a YAML dir and a unique mesh id for an `ambit up` in a test.
 * This process's AMBIT_RUN_DIR points at the run dir (tests read the state
 * file and logs). When the test ends, also on failure: `ambit down`, the
 * mesh's namespaces removed, both dirs deleted. AMBIT_TEST_KEEP_LOGS=DIR
 * keeps the components' logs for a post-mortem.
 */
export function testMeshDirs(t: Test, name: string): TestMeshDirs {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `ambit-${name}-`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ambit-${name}-yaml-`));
  const meshId = testMeshId();
  process.env.AMBIT_RUN_DIR = runDir;
  t.teardown(async () => {
    const keep = process.env.AMBIT_TEST_KEEP_LOGS;
    if (keep) {
      try {
        fs.cpSync(path.join(runDir, meshId, "logs"), path.join(keep, meshId), { recursive: true });
      } catch (e) {
        t.comment(`logs not kept: ${(e as Error).message}`);
      }
    }
    await ambit(runDir, ["down", "--mesh-id", meshId], 60_000);
    await destroyMeshNetwork(meshId, { graceMs: 500 }).catch(() => undefined);
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { runDir, dir, meshId };
}

/** A TCP client run inside a pod: connects, sends the message, prints what came back (or the error) as JSON. */
export const CLIENT = `
const net = require("net");
const [host, port, msg] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let out = "";
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
s.setTimeout(5000);
s.on("connect", () => s.write(msg));
s.on("data", (d) => { out += d; if (out.includes(msg)) s.end(); });
s.on("close", () => done({ out }));
s.on("error", (e) => done({ out, error: e.code || e.message }));
s.on("timeout", () => done({ out, error: "timeout" }));
`;


const ECHO = `require("net").createServer((s) => { s.on("error", () => {}); s.on("data", (d) => s.write("echo:" + d)); }).listen(8080)`;

function pods(ns: string): string {
  return `
apiVersion: v1
kind: ServiceAccount
metadata: {name: server, namespace: ${ns}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: ${ns}}
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: ${ns}
  labels: {app: server}
spec:
  nodeName: node-2
  serviceAccountName: server
  containers:
    - name: echo
      image: ignored
      command: [node, -e, ${JSON.stringify(ECHO)}]
      ports: [{name: tcp, containerPort: 8080}]
      readinessProbe:
        tcpSocket: {port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: ${ns}}
spec:
  selector: {app: server}
  ports: [{name: tcp, port: 80, targetPort: tcp}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: ${ns}
  labels: {app: client}
spec:
  nodeName: node-1
  serviceAccountName: client
  containers:
    - name: idle
      image: ignored
      command: [sleep, infinity]
`;
}

export function writeMeshFixture(dir: string): void {
  fs.writeFileSync(
    path.join(dir, "00-namespaces.yaml"),
    `apiVersion: v1
kind: Namespace
metadata:
  name: mesh
  labels: {ambit.dev/dataplane-mode: ambient}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
`,
  );
  fs.writeFileSync(path.join(dir, "mesh.yaml"), pods("mesh"));
  fs.writeFileSync(path.join(dir, "plain.yaml"), pods("plain"));
}

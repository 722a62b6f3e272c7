// The YAML of the mesh tests: namespace `mesh` (enrolled) and `plain` (not),
// each with an echo server pinned to node-2 and an idle client pinned to
// node-1. The echo server answers `echo:<what it read>`.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const cliMain = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `ambit ARGS` as a user would (without tap's NODE_OPTIONS), against the mesh state under runDir. */
export function ambit(runDir: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  const env = { ...process.env, AMBIT_RUN_DIR: runDir, NODE_OPTIONS: "" };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliMain, ...args],
      { env, timeout: timeoutMs, maxBuffer: 16 << 20 },
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

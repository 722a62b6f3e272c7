// The YAML of the mesh tests: namespace `mesh` (enrolled) and `plain` (not),
// each with an echo server pinned to node-2 and an idle client pinned to
// node-1. The echo server answers `echo:<what it read>`.
import fs from "node:fs";
import path from "node:path";

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

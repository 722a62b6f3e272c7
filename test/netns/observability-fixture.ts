// The mesh of the observability test: namespace `obs` (enrolled) with
//   web     HTTP echo on node-2 behind Service web, which goes through the
//           namespace's waypoint (L7: requests, spans); it answers with the
//           traceparent it received, so the test sees the trace cross it;
//           /admin* is denied at the waypoint (L7 denial)
//   db      TCP echo on node-2 behind Service db, no waypoint (L4 only);
//           the pod `rogue` is denied by an L4 AuthorizationPolicy
//   client, rogue  idle pods on node-1 that the test drives with `ambit exec`
import fs from "node:fs";
import path from "node:path";

const HTTP_ECHO = `require("http").createServer((q, s) => { s.setHeader("content-type", "application/json"); s.end(JSON.stringify({ path: q.url, traceparent: q.headers.traceparent || null })); }).listen(8080)`;
const TCP_ECHO = `require("net").createServer((s) => { s.on("error", () => {}); s.on("data", (d) => s.write("echo:" + d)); }).listen(9000)`;

const YAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: obs
  labels: {ambit.dev/dataplane-mode: ambient}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: obs}
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: obs}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: obs, labels: {app: web}}
spec:
  nodeName: node-2
  serviceAccountName: web
  containers:
    - name: echo
      image: ignored
      command: [node, -e, ${JSON.stringify(HTTP_ECHO)}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: obs
  labels: {ambit.dev/use-waypoint: waypoint}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: db, namespace: obs}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: obs, labels: {app: db}}
spec:
  nodeName: node-2
  serviceAccountName: db
  containers:
    - name: echo
      image: ignored
      command: [node, -e, ${JSON.stringify(TCP_ECHO)}]
      ports: [{name: tcp, containerPort: 9000}]
      readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: obs}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 80, targetPort: tcp}]
---
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: db-no-rogue, namespace: obs}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/obs/sa/rogue]}}]
---
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-no-admin, namespace: obs}
spec:
  targetRefs: [{kind: Service, name: web}]
  action: DENY
  rules:
    - to: [{operation: {paths: ["/admin*"]}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: obs}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: obs, labels: {app: client}}
spec:
  nodeName: node-1
  serviceAccountName: client
  containers: [{name: idle, image: ignored, command: [sleep, infinity]}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: rogue, namespace: obs}
---
apiVersion: v1
kind: Pod
metadata: {name: rogue, namespace: obs, labels: {app: rogue}}
spec:
  nodeName: node-1
  serviceAccountName: rogue
  containers: [{name: idle, image: ignored, command: [sleep, infinity]}]
`;

export function writeObservabilityFixture(dir: string): void {
  fs.writeFileSync(path.join(dir, "obs.yaml"), YAML);
}

/**
 * Run inside a pod (`node -e TRAFFIC host port count mode [path] [traceparent]`):
 * `tcp` opens `count` connections one after the other, each sending a line
 * and waiting for its echo (or an error); `http` sends `count` GETs, one
 * connection each. Prints one JSON array of results.
 */
export const TRAFFIC = `
const net = require("net"), http = require("http");
const [host, port, count, mode, path = "/", traceparent] = process.argv.slice(1);
const tcp = () => new Promise((done) => {
  const s = net.connect({ host, port: Number(port) });
  let out = "";
  s.setTimeout(5000);
  s.on("connect", () => s.write("hi"));
  s.on("data", (d) => { out += d; if (out.includes("hi")) s.end(); });
  s.on("close", () => done({ out }));
  s.on("error", (e) => done({ out, error: e.code || e.message }));
  s.on("timeout", () => { s.destroy(); done({ out, error: "timeout" }); });
});
const get = () => new Promise((done) => {
  const headers = traceparent ? { traceparent } : {};
  const q = http.get({ host, port: Number(port), path, headers, agent: false, timeout: 5000 }, (r) => {
    let body = "";
    r.on("data", (d) => (body += d));
    r.on("end", () => done({ status: r.statusCode, body }));
  });
  q.on("timeout", () => q.destroy(new Error("timeout")));
  q.on("error", (e) => done({ error: e.code || e.message }));
});
(async () => {
  const out = [];
  for (let i = 0; i < Number(count); i++) out.push(await (mode === "tcp" ? tcp() : get()));
  console.log(JSON.stringify(out));
})();
`;

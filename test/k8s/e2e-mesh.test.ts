// The end-to-end tier: a real API server, scheduler and controller manager,
// two test nodes from the node host (real CNI bridge + host-local, pods as
// processes in their own network namespaces), ambit installed with
// `kubectl apply -k manifests/`.
import t from "tap";
import {
  captureFabric,
  e2eUnavailableReason,
  httpFromPod,
  podOf,
  SERVER_JS,
  startE2e,
} from "./e2e-fixtures.js";

const skip = e2eUnavailableReason();

const APPS = (ns: string, marker: string) => `
apiVersion: v1
kind: Namespace
metadata: { name: ${ns} }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: server, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: server } }
  template:
    metadata: { labels: { app: server } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node2 }
      terminationGracePeriodSeconds: 1
      containers:
        - name: server
          image: node:20
          command: [node, -e, ${JSON.stringify(SERVER_JS)}]
          env:
            - { name: PORT, value: "8080" }
            - { name: MARKER, value: ${marker} }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe:
            httpGet: { path: /ready, port: http }
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: ${ns} }
spec:
  selector: { app: server }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node1 }
      terminationGracePeriodSeconds: 1
      containers:
        - name: client
          image: busybox
          command: [sleep, infinity]
`;

t.test("e2e: ambit on a real control plane with two test nodes", { skip, timeout: 600_000 }, async (t) => {
  const e = await startE2e(t, 2);
  const MARKER = "PLAINMARKER7f3a";

  await t.test("plain pods on the test nodes reach a Service across nodes", async (t) => {
    await e.kubectl(["apply", "-f", "-"], { input: APPS("demo", MARKER) });
    await e.kubectl(["-n", "demo", "rollout", "status", "deploy/server", "deploy/client", "--timeout=120s"]);
    const nodes = await e.kubectl([
      "get",
      "nodes",
      "-o",
      "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
    ]);
    t.same(nodes.stdout.split(" "), ["True", "True"], "both test nodes are Ready");
    const client = await podOf(e, "demo", "app=client");
    const wide = await e.kubectl(["-n", "demo", "get", "pods", "-o", "wide"]);
    t.comment(wide.stdout);
    const cap = captureFabric(e);
    await cap.ready;
    const answer = await httpFromPod(e, "demo", client, "http://server.demo.svc/x");
    const text = await cap.stop();
    t.match(
      answer,
      new RegExp(`^200 ${MARKER} server-`),
      "the client reaches the server by its Service name",
    );
    t.ok(text.includes(MARKER), "without the mesh, the payload crosses the inter-node link in plain text", {
      capture: text.slice(0, 3000),
    });
  });
});

// The end-to-end tier: a real API server, scheduler and controller manager,
// two test nodes from the node host (real CNI bridge + host-local, pods as
// processes in their own network namespaces), ambit installed with
// `kubectl apply -k manifests/`.
import { join } from "node:path";
import t from "tap";
import {
  captureFabric,
  e2eUnavailableReason,
  eventually,
  httpFromPod,
  podOf,
  root,
  SERVER_JS,
  startE2e,
  ztunnelMetrics,
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

  await t.test(
    "kubectl apply -k manifests/: the controller Deployment and a ztunnel on every node",
    async (t) => {
      await e.kubectl(["apply", "-k", join(root, "manifests")], { timeoutMs: 120_000 });
      await e.kubectl(
        ["-n", "ambit-system", "rollout", "status", "deploy/ambit-controller", "--timeout=120s"],
        {
          timeoutMs: 140_000,
        },
      );
      await e.kubectl(["-n", "ambit-system", "rollout", "status", "ds/ambit-ztunnel", "--timeout=120s"], {
        timeoutMs: 140_000,
      });
      const zt = await e.kubectl([
        "-n",
        "ambit-system",
        "get",
        "pods",
        "-l",
        "app=ambit-ztunnel",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
      ]);
      t.same(zt.stdout.split(" ").sort(), ["node1", "node2"], "one ztunnel per node");
    },
  );

  await t.test("a labelled namespace: client → server across nodes over mTLS", async (t) => {
    await e.kubectl(["label", "namespace", "demo", "ambit.dev/dataplane-mode=ambient"]);
    const client = await podOf(e, "demo", "app=client");
    // Enrolment reaches both ztunnels (existing pods included) asynchronously: wait for a secured connection.
    await eventually(
      "an mTLS connection reported by node2's ztunnel",
      async () => {
        const answer = await httpFromPod(e, "demo", client, "http://server.demo.svc/warm");
        if (!answer.startsWith("200 ")) return false;
        const m = await ztunnelMetrics(e, "node2");
        return (
          /istio_tcp_connections_opened_total\{[^}]*reporter="destination"[^}]*connection_security_policy="mutual_tls"[^}]*destination_workload="server"/.test(
            m,
          ) ||
          /istio_tcp_connections_opened_total\{[^}]*connection_security_policy="mutual_tls"[^}]*reporter="destination"/.test(
            m,
          )
        );
      },
      90_000,
    );
    const cap = captureFabric(e);
    await cap.ready;
    const answer = await httpFromPod(e, "demo", client, "http://server.demo.svc/secured");
    const text = await cap.stop();
    t.match(answer, new RegExp(`^200 ${MARKER} server-`), "the client still reaches the server");
    t.notOk(text.includes(MARKER), "no plaintext payload on the inter-node link");
    t.match(text, /\.15008: /, "the connection crossed the link as HBONE (port 15008)");
    const access = (
      await e.kubectl([
        "-n",
        "ambit-system",
        "get",
        "pods",
        "-l",
        "app=ambit-ztunnel",
        "--field-selector=spec.nodeName=node2",
        "-o",
        "jsonpath={.items[0].metadata.name}",
      ])
    ).stdout;
    const log = e.host.logs("ambit-system", access, "ztunnel");
    t.match(
      log,
      /"direction":"inbound".*spiffe:\/\/cluster\.local\/ns\/demo\/sa\/default/,
      "node2's ztunnel logged the inbound connection with the client's SPIFFE identity",
    );
  });
});

// Shared by the test/k8s provider tests: a control plane with the CRDs and a
// Node, the demo objects, and waiting on provider/elector events.
import { join } from "node:path";
import { KubeClient } from "../../controller/provider/kube/client.js";
import type { KubeProvider } from "../../controller/provider/kube/kube-provider.js";
import type { LeaderElector } from "../../controller/provider/kube/leader-election.js";
import type { ClusterSnapshot, KubeObject } from "../../controller/provider/objects.js";
import { type Cluster, clusterUnavailableReason, startCluster } from "./cluster.js";

export const skip = clusterUnavailableReason();
export const root = process.cwd();

/** Resolves with the first snapshot (the current one included) that satisfies `pred`. */
export function snapshotWhere(
  p: KubeProvider,
  pred: (s: ClusterSnapshot) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<ClusterSnapshot> {
  return new Promise((resolve, reject) => {
    if (p.isSynced() && pred(p.snapshot())) return resolve(p.snapshot());
    const timer = setTimeout(() => {
      p.off("snapshot", on);
      reject(new Error(`no snapshot with ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (s: ClusterSnapshot) => {
      if (!pred(s)) return;
      clearTimeout(timer);
      p.off("snapshot", on);
      resolve(s);
    };
    p.on("snapshot", on);
  });
}

export function once(
  e: LeaderElector,
  event: "started-leading" | "stopped-leading",
  timeoutMs = 20_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${e.identity}: no ${event} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    e.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export const find = <T extends KubeObject>(list: T[], ns: string | undefined, name: string) =>
  list.find((o) => o.metadata.name === name && o.metadata.namespace === ns);

export const DEMO = `
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: demo }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: demo, labels: { app: client } }
spec:
  serviceAccountName: client
  nodeName: node-1
  automountServiceAccountToken: false
  containers: [{ name: main, image: client, command: [sleep, infinity], ports: [{ name: http, containerPort: 8080 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: demo }
spec:
  selector: { app: server }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

export const NODE = (name: string, ip: string) => `
apiVersion: v1
kind: Node
metadata: { name: ${name}, labels: { kubernetes.io/hostname: ${name} } }
status: { addresses: [{ type: InternalIP, address: ${ip} }] }
`;

/** A ztunnel pod of the ambit-ztunnel service account bound to `node` (no kubelet runs it). */
export const ZTUNNEL_POD = (node: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ztunnel-${node}, namespace: ambit-system }
spec:
  serviceAccountName: ambit-ztunnel
  automountServiceAccountToken: false
  nodeName: ${node}
  containers: [{ name: ztunnel, image: ambit }]
`;

/** No kubelet runs the pods: report one Running and Ready with its IP, as a kubelet would. */
export async function reportPodRunning(
  c: Cluster,
  namespace: string,
  name: string,
  ip: string,
): Promise<void> {
  await c.kubectl([
    "patch",
    "pod",
    name,
    "-n",
    namespace,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({
      status: {
        phase: "Running",
        podIP: ip,
        podIPs: [{ ip }],
        conditions: [{ type: "Ready", status: "True" }],
      },
    }),
  ]);
}

/** A control plane (no scheduler) with the ambit.dev and Gateway API CRDs Established and Node node-1. */
export async function startProviderCluster(): Promise<{ c: Cluster; client: KubeClient }> {
  const c = await startCluster({ scheduler: false });
  try {
    const client = KubeClient.fromSource({ kubeconfigPath: c.kubeconfigPath });
    await c.kubectl(["apply", "--server-side", "-k", join(root, "manifests/crds")]);
    await c.kubectl(["apply", "--server-side", "-k", join(root, "manifests/gateway-api")]);
    await c.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd",
      "-l",
      "app.kubernetes.io/part-of=ambit",
    ]);
    await c.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/gatewayclasses.gateway.networking.k8s.io",
    ]);
    await c.kubectl(["apply", "-f", "-"], { input: NODE("node-1", "10.1.0.1") });
    return { c, client };
  } catch (e) {
    await c.stop();
    throw e;
  }
}

// ztunnel's CNI mode against a real API server (no network namespaces): the
// ADD-time enrolment decision from the pod's and its namespace's labels, as
// the ztunnel's own service account with the RBAC of manifests/ (get only);
// the plugin installed and chained at start; on exit it stays while the
// DaemonSet exists (an upgrade) and is taken out once the DaemonSet is
// deleted (uninstall).
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { hasAmbitPlugin } from "../../cni/conflist.js";
import { KubeClient } from "../../controller/provider/kube/client.js";
import type { ZtunnelConfig } from "../../ztunnel/config.js";
import { KubeEnrolment } from "../../ztunnel/node-agent/zds-enrolment.js";
import { CniWiring } from "../../ztunnel/node-agent/zds-wiring.js";
import { MeshState } from "../../ztunnel/state/mesh-state.js";
import { root, skip, startProviderCluster } from "./kube-fixtures.js";

const OBJECTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec: { nodeName: node-1, containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: opted-out, namespace: shop, labels: { ambit.dev/dataplane-mode: none } }
spec: { nodeName: node-1, containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: plain }
spec: { nodeName: node-1, containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: opted-in, namespace: plain, labels: { ambit.dev/dataplane-mode: ambient } }
spec: { nodeName: node-1, containers: [{ name: c, image: x }] }
`;

const ref = (namespace: string, name: string) => ({ key: `${namespace}/${name}`, uid: "", namespace, name });

t.test(
  "CNI enrolment and uninstall on a real API server",
  { skip: skip ?? false, timeout: 300_000 },
  async (t) => {
    const { c } = await startProviderCluster();
    t.teardown(() => c.stop());
    await c.kubectl(["apply", "-f", "-"], { input: OBJECTS });
    await c.kubectl(["apply", "-f", join(root, "manifests/install/namespace.yaml")]);
    await c.kubectl(["apply", "-f", join(root, "manifests/install/rbac.yaml")]);
    await c.kubectl(["apply", "-f", join(root, "manifests/install/ztunnel.yaml")]);
    // The ztunnel's own credentials: a token of its service account (RBAC as installed).
    const token = (await c.kubectl(["create", "token", "ambit-ztunnel", "-n", "ambit-system"])).stdout.trim();
    const dir = await mkdtemp(join(tmpdir(), "ambit-t-cnienrol-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const kubeconfig = join(dir, "ztunnel.kubeconfig");
    fs.writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "c",
            cluster: {
              server: c.server,
              "certificate-authority-data": Buffer.from(c.caPem).toString("base64"),
            },
          },
        ],
        users: [{ name: "ztunnel", user: { token } }],
        contexts: [{ name: "z", context: { cluster: "c", user: "ztunnel" } }],
        "current-context": "z",
      }),
    );

    await t.test("the decision follows the controller's rule, with get-only access", async (t) => {
      const e = new KubeEnrolment(KubeClient.fromSource({ kubeconfigPath: kubeconfig }));
      t.equal(await e.decide(ref("shop", "web")), true, "enrolled namespace");
      t.equal(await e.decide(ref("shop", "opted-out")), false, "pod label none opts out");
      t.equal(await e.decide(ref("plain", "db")), false, "namespace not enrolled");
      t.equal(await e.decide(ref("plain", "opted-in")), true, "pod label ambient opts in");
      t.equal(await e.decide(ref("shop", "gone")), false, "a pod deleted meanwhile is not captured");
      const can = await c.kubectl(
        ["auth", "can-i", "list", "pods", "--as=system:serviceaccount:ambit-system:ambit-ztunnel", "-A"],
        { allowFailure: true },
      );
      t.equal(can.stdout.trim(), "no", "ztunnel cannot list pods");
      t.equal(await e.daemonSetDeleted("ambit-system", "ambit-ztunnel"), false, "our DaemonSet exists");
      t.equal(
        await e.daemonSetDeleted("ambit-system", "not-ours"),
        true,
        "no access (403, as when kubectl delete -k removed our RBAC first) counts as uninstall",
      );
    });

    await t.test(
      "installed at start; kept on an upgrade's exit; removed when the DaemonSet is deleted",
      async (t) => {
        const binDir = join(dir, "bin");
        const confDir = join(dir, "net.d");
        fs.mkdirSync(confDir);
        const conflist = join(confDir, "10-podnet.conflist");
        fs.writeFileSync(
          conflist,
          JSON.stringify({
            cniVersion: "1.0.0",
            name: "podnet",
            plugins: [{ type: "bridge", bridge: "cni0" }],
          }),
        );
        const cfg = {
          nodeName: "node-1",
          cniSocket: join(dir, "agent.sock"),
          cniBinDir: binDir,
          cniConfDir: confDir,
          cniHostBinDir: binDir,
          cniCopyNode: false,
          kubeApi: kubeconfig,
          podNamespace: "ambit-system",
          daemonSetName: "ambit-ztunnel",
        } as ZtunnelConfig;
        const start = async () => {
          const w = new CniWiring({
            cfg,
            state: new MeshState(),
            capturer: { enroll: async () => undefined, unenroll: async () => undefined },
            onChange: () => {},
          });
          await w.start();
          return w;
        };
        const w1 = await start();
        t.ok(hasAmbitPlugin(conflist, fs.readFileSync(conflist, "utf8")), "chained at start");
        t.ok(fs.existsSync(join(binDir, "ambit-cni")));
        t.equal(
          await w1.decide({
            ...ref("shop", "web"),
            netnsPath: "/x",
            ips: [],
            containerId: "",
            interface: "",
          }),
          true,
        );
        t.equal(await w1.closeAndCheckUninstall(), false, "the DaemonSet exists: an upgrade");
        t.ok(
          hasAmbitPlugin(conflist, fs.readFileSync(conflist, "utf8")),
          "the plugin stays for the successor",
        );

        const w2 = await start();
        await c.kubectl(["delete", "daemonset", "ambit-ztunnel", "-n", "ambit-system", "--wait=true"]);
        t.equal(await w2.closeAndCheckUninstall(), true, "the DaemonSet is gone: uninstall");
        t.notOk(hasAmbitPlugin(conflist, fs.readFileSync(conflist, "utf8")), "taken out of the chain");
        t.notOk(fs.existsSync(join(binDir, "ambit-cni")), "and off the node");
        t.same(JSON.parse(fs.readFileSync(conflist, "utf8")).plugins, [{ type: "bridge", bridge: "cni0" }]);
      },
    );
  },
);

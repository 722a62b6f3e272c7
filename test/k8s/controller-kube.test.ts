// `ambit controller --provider=kube` in-process against a real API server: the
// pod an informer sees reaches a ztunnel's delta xDS stream, and a ztunnel's
// bound service-account token (TokenReview) gets a certificate for a pod on
// its node and is refused one for a pod elsewhere.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";
import { type Address, AddressSchema } from "../../core/gen/workload_pb.js";
import { DeltaAdsClient } from "../../core/xds/client.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";
import { DEMO, NODE, reportPodRunning, skip, startProviderCluster, ZTUNNEL_POD } from "./kube-fixtures.js";

const POD = "Kubernetes//v1/Pod/demo/client";

t.test(
  "ambit controller --provider=kube serves the cluster",
  { skip: skip ?? false, timeout: 300_000 },
  async (t) => {
    const { c } = await startProviderCluster();
    t.teardown(() => c.stop());
    const dir = await mkdtemp(join(tmpdir(), "ambit-t-ctlkube-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await c.kubectl(["apply", "-f", "-"], { input: DEMO });
    await c.kubectl(["apply", "-f", "-"], {
      input: `${NODE("node-2", "10.1.0.2")}
---
apiVersion: v1
kind: Namespace
metadata: { name: ambit-system }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ambit-ztunnel, namespace: ambit-system }
---
${ZTUNNEL_POD("node-1")}---
${ZTUNNEL_POD("node-2")}`,
    });
    // No kubelet: report the pod's IP and readiness as one would.
    await reportPodRunning(c, "demo", "client", "10.244.1.5");

    const cfg = parseControllerConfig(
      [
        "--provider=kube",
        "--listen",
        "127.0.0.1",
        "--xds-port",
        "0",
        "--secure-port",
        "0",
        "--admin-port=-1",
      ],
      {
        POD_NAMESPACE: "ambit-system",
        POD_NAME: "ambit-controller-0",
        AMBIT_CA_DIR: join(dir, "ca"),
        AMBIT_CA_ROOT_SECRET: "ambit-ca-root",
        AMBIT_CA_ALLOWED_SERVICE_ACCOUNTS: "ambit-system/ambit-ztunnel",
        KUBECONFIG: c.kubeconfigPath,
      },
    );
    if (cfg === "help") throw new Error("unexpected help");
    t.equal(cfg.provider, "kube");
    t.equal(cfg.configDir, "", "no YAML directory in kube mode");
    const app = new ControllerApp(cfg);
    t.teardown(() => app.close());
    await app.start();

    const secret = JSON.parse(
      (await c.kubectl(["get", "secret", "-n", "ambit-system", "ambit-ca-root", "-o", "json"])).stdout,
    );
    t.equal(
      Buffer.from(secret.data["ca-cert.pem"], "base64").toString().trim(),
      app.rootPem()?.trim(),
      "the CA root is the Secret's",
    );

    const addresses = new Map<string, Address>();
    let resolveSeen: () => void = () => {};
    const seen = new Promise<void>((r) => (resolveSeen = r));
    const client = new DeltaAdsClient({
      address: `127.0.0.1:${app.ports.xds}`,
      node: {
        id: "ztunnel~10.213.0.10~ztunnel-node-1.ambit-system~ambit-system.svc.cluster.local",
        metadata: { NODE_NAME: "node-1" },
      },
      handlers: [
        {
          typeUrl: ADDRESS_TYPE,
          apply(u) {
            for (const a of u.added) addresses.set(a.name, anyUnpack(a.resource, AddressSchema)!);
            for (const r of u.removed) addresses.delete(r);
            if (addresses.has(POD)) resolveSeen();
          },
        },
        { typeUrl: AUTHORIZATION_TYPE, apply() {} },
      ],
    });
    client.start();
    t.teardown(() => client.close());
    await seen;
    const w = addresses.get(POD)!;
    t.equal(w.type.case, "workload");
    if (w.type.case === "workload") {
      t.equal(w.type.value.serviceAccount, "client");
      t.equal(w.type.value.node, "node-1");
      t.equal(w.type.value.tunnelProtocol, 1, "namespace labelled ambient: HBONE");
      t.same(
        [...w.type.value.addresses].map((a) => [...a].join(".")),
        ["10.244.1.5"],
      );
    }

    // CreateCertificate authenticated by TokenReview: the ztunnel's token is bound to its pod, which names its node.
    const token = async (pod: string) =>
      (
        await c.kubectl([
          "create",
          "token",
          "ambit-ztunnel",
          "-n",
          "ambit-system",
          "--audience=ambit-ca",
          "--bound-object-kind=Pod",
          `--bound-object-name=${pod}`,
        ])
      ).stdout.trim();
    const onNode1 = new CaClient({
      address: `127.0.0.1:${app.ports.xds}`,
      token: await token("ztunnel-node-1"),
    });
    const cert = await onNode1.fetch("spiffe://cluster.local/ns/demo/sa/client");
    t.match(cert.certChainPem[0], /BEGIN CERTIFICATE/);
    const onNode2 = new CaClient({
      address: `127.0.0.1:${app.ports.xds}`,
      token: await token("ztunnel-node-2"),
    });
    await t.rejects(
      onNode2.fetch("spiffe://cluster.local/ns/demo/sa/client"),
      /node/,
      "client runs on node-1 only",
    );
    const stranger = new CaClient({ address: `127.0.0.1:${app.ports.xds}`, token: "not-a-token" });
    await t.rejects(stranger.fetch("spiffe://cluster.local/ns/demo/sa/client"), /UNAUTHENTICATED|token/i);
  },
);

// The waypoint deployer against a real API server with the controller
// manager (garbage collector) running: a Gateway of class ambit-waypoint
// gets its ServiceAccount, root ConfigMap, Service and Deployment, owned by
// the Gateway, by server-side apply; the Gateway's status says Programmed
// with the Service's address; a spec change updates the Deployment; a
// Gateway that leaves the class is pruned; deleting the Gateway lets the
// garbage collector delete its objects. Then the same through KubeRuntime
// (leader duties after each translation).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { KubeProvider } from "../../controller/provider/kube/kube-provider.js";
import { KubeRuntime } from "../../controller/provider/kube/kube-runtime.js";
import {
  DEPLOYER_FIELD_MANAGER,
  planPrune,
  WaypointDeployer,
} from "../../controller/provider/kube/waypoint-deployer.js";
import type { ClusterSnapshot, Gateway } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import { find, skip, snapshotWhere, startProviderCluster } from "./kube-fixtures.js";

const ROOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

const waypointGateway = (ns: string, name: string, extra = "") => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: ${name}, namespace: ${ns} }
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
${extra}`;

interface Owned {
  metadata: {
    uid: string;
    labels?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
    managedFields?: { manager: string; operation: string }[];
  };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

t.test("waypoint deployer", { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const { c, client } = await startProviderCluster();
  t.teardown(() => c.stop());
  const get = async (kind: string, ns: string, name: string): Promise<Owned | undefined> => {
    const r = await c.kubectl([
      "get",
      kind,
      name,
      "-n",
      ns,
      "-o",
      "json",
      "--ignore-not-found",
      "--show-managed-fields",
    ]);
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Owned) : undefined;
  };
  await c.kubectl(["apply", "-f", "-"], {
    input: `apiVersion: v1\nkind: Namespace\nmetadata: { name: shop }\n---\n${waypointGateway("shop", "waypoint")}`,
  });
  const provider = new KubeProvider({ client, debounceMs: 20 });
  await provider.start();
  t.teardown(() => provider.close());
  const deployer = new WaypointDeployer({
    client,
    image: "registry.example/ambit:test",
    controllerNamespace: "ambit-system",
    trustDomain: "cluster.local",
    rootPem: () => ROOT_PEM,
  });

  const gw = (s: ClusterSnapshot, name: string) => find(s.gateways, "shop", name) as Gateway | undefined;
  let snap = await snapshotWhere(provider, (s) => gw(s, "waypoint") !== undefined, "the Gateway");
  const gatewayUid = gw(snap, "waypoint")!.metadata.uid!;

  await t.test("a waypoint Gateway gets its objects, owned by it", async (t) => {
    const r = await deployer.sync(snap);
    t.same(r, { applied: ["shop/waypoint"], pruned: [], errors: [] });
    for (const [kind, name] of [
      ["serviceaccount", "waypoint"],
      ["configmap", "waypoint-ambit-root"],
      ["service", "waypoint"],
      ["deployment", "waypoint"],
    ] as const) {
      const o = await get(kind, "shop", name);
      t.ok(o, `${kind} ${name} exists`);
      t.same(
        o?.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]),
        [["Gateway", "waypoint", gatewayUid, true]],
        `${kind} is owned by the Gateway`,
      );
      t.equal(o?.metadata.labels?.["app.kubernetes.io/managed-by"], DEPLOYER_FIELD_MANAGER);
      t.ok(
        o?.metadata.managedFields?.some(
          (m) => m.manager === DEPLOYER_FIELD_MANAGER && m.operation === "Apply",
        ),
        `${kind} written by server-side apply`,
      );
    }
    const dep = (await get("deployment", "shop", "waypoint"))!;
    const pod = (
      dep.spec as {
        template: {
          spec: {
            containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[];
            serviceAccountName: string;
          };
        };
      }
    ).template.spec;
    t.equal(pod.containers[0]!.image, "registry.example/ambit:test");
    t.same(pod.containers[0]!.args, ["waypoint"]);
    t.equal(pod.serviceAccountName, "waypoint");
    t.equal(pod.containers[0]!.env.find((e) => e.name === "AMBIT_WAYPOINT")?.value, "shop/waypoint");
    t.equal((await get("configmap", "shop", "waypoint-ambit-root"))?.data?.["root-cert.pem"], ROOT_PEM);
    const svc = (await get("service", "shop", "waypoint"))!;
    const clusterIP = (svc.spec as { clusterIP: string }).clusterIP;
    t.match(clusterIP, /^10\.96\./, "the Service got a ClusterIP");
    t.equal(
      svc.metadata.labels?.["ambit.dev/use-waypoint"],
      "none",
      "a waypoint's own Service never uses a waypoint",
    );

    // The Gateway's status: Programmed with the address, from the deployer's own field manager.
    const g = JSON.parse(
      (await c.kubectl(["get", "gateway", "waypoint", "-n", "shop", "-o", "json"])).stdout,
    );
    const programmed = g.status.conditions.find((x: { type: string }) => x.type === "Programmed");
    t.match(programmed, { status: "True", reason: "Programmed", observedGeneration: 1 });
    t.same(g.status.addresses, [
      { type: "IPAddress", value: clusterIP },
      { type: "Hostname", value: "waypoint.shop.svc.cluster.local" },
    ]);

    snap = await snapshotWhere(
      provider,
      (s) => gw(s, "waypoint")?.status?.conditions?.some((x) => x.type === "Programmed") === true,
      "the status",
    );
    t.same(
      await deployer.sync(snap),
      { applied: [], pruned: [], errors: [] },
      "nothing to do the second time",
    );
  });

  await t.test("a changed Gateway updates its Deployment", async (t) => {
    await c.kubectl(["apply", "-f", "-"], {
      input: waypointGateway("shop", "waypoint", "  infrastructure: { labels: { team: payments } }"),
    });
    snap = await snapshotWhere(
      provider,
      (s) => gw(s, "waypoint")?.spec.infrastructure?.labels?.team === "payments",
      "the new labels",
    );
    const r = await deployer.sync(snap);
    t.same(r.applied, ["shop/waypoint"]);
    const dep = (await get("deployment", "shop", "waypoint"))!;
    t.equal(dep.metadata.labels?.team, "payments");
    t.equal(
      (dep.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels
        .team,
      "payments",
      "the pods get the label too",
    );
    t.equal(
      dep.metadata.uid,
      (await get("deployment", "shop", "waypoint"))!.metadata.uid,
      "updated in place",
    );
  });

  await t.test("a Gateway that leaves the class is pruned", async (t) => {
    await c.kubectl(["apply", "-f", "-"], { input: waypointGateway("shop", "second") });
    snap = await snapshotWhere(provider, (s) => gw(s, "second") !== undefined, "the second Gateway");
    t.same((await deployer.sync(snap)).applied, ["shop/second"]);
    t.ok(await get("deployment", "shop", "second"));
    // As if the class changed: the deployer no longer wants it.
    const without = { ...snap, gateways: snap.gateways.filter((g) => g.metadata.name !== "second") };
    const r = await deployer.sync(without);
    t.same(r.pruned.sort(), [
      "ConfigMap shop/second-ambit-root",
      "Deployment shop/second",
      "Service shop/second",
      "ServiceAccount shop/second",
    ]);
    t.equal(await get("deployment", "shop", "second"), undefined);
    t.ok(await get("deployment", "shop", "waypoint"), "the other waypoint stays");
    const foreign = {
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: "x",
        namespace: "shop",
        labels: { "app.kubernetes.io/managed-by": "helm" },
        ownerReferences: [
          {
            apiVersion: "gateway.networking.k8s.io/v1",
            kind: "Gateway",
            name: "gone",
            uid: "u",
            controller: true,
          },
        ],
      },
    };
    t.same(planPrune([foreign], new Set()), [], "objects not labelled as ours are never pruned");
    await c.kubectl(["delete", "gateway", "second", "-n", "shop"]);
  });

  await t.test("deleting the Gateway garbage-collects its objects", async (t) => {
    await c.kubectl(["delete", "gateway", "waypoint", "-n", "shop", "--wait=true"]);
    for (const kind of [
      "deployment/waypoint",
      "service/waypoint",
      "serviceaccount/waypoint",
      "configmap/waypoint-ambit-root",
    ]) {
      await c.kubectl(["wait", "--for=delete", kind, "-n", "shop", "--timeout=90s"], { timeoutMs: 100_000 });
      t.equal(
        await get(kind.split("/")[0]!, "shop", kind.split("/")[1]!),
        undefined,
        `${kind} deleted by the GC`,
      );
    }
  });

  await t.test("KubeRuntime deploys as the leader after a translation", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "ambit-t-wpdeploy-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await c.kubectl(["apply", "-f", "-"], {
      input: `apiVersion: v1\nkind: Namespace\nmetadata: { name: ambit-system }\n---\napiVersion: v1\nkind: Namespace\nmetadata: { name: books }\n---\n${waypointGateway("books", "waypoint")}`,
    });
    const rt = new KubeRuntime({
      client,
      namespace: "ambit-system",
      identity: "replica-a",
      leaseName: "ambit-wp-test",
      trustDomain: "cluster.local",
      caDir: dir,
      allowedServiceAccounts: ["ambit-system/ambit-ztunnel"],
      leaseDurationSeconds: 3,
      renewDeadlineMs: 2000,
      retryPeriodMs: 200,
      debounceMs: 20,
      waypointImage: "ambit:runtime",
    });
    rt.provider.on("snapshot", (s: ClusterSnapshot) => rt.publishStatus(s, translate(s)));
    await rt.start();
    t.teardown(() => rt.close());
    await c.kubectl(
      [
        "wait",
        '--for=jsonpath={.status.conditions[?(@.type=="Programmed")].status}=True',
        "gateway/waypoint",
        "-n",
        "books",
        "--timeout=60s",
      ],
      { timeoutMs: 70_000 },
    );
    const dep = (await get("deployment", "books", "waypoint"))!;
    t.equal(
      (dep.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]!
        .image,
      "ambit:runtime",
    );
    const cm = await get("configmap", "books", "waypoint-ambit-root");
    t.match(cm?.data?.["root-cert.pem"], /BEGIN CERTIFICATE/, "the mesh root from the CA Secret");
    const g = JSON.parse(
      (await c.kubectl(["get", "gateway", "waypoint", "-n", "books", "-o", "json"])).stdout,
    );
    t.ok(
      g.status.conditions.some(
        (x: { type: string; status: string }) => x.type === "Accepted" && x.status === "True",
      ),
      "the translator's Accepted stays beside the deployer's Programmed",
    );
  });
});

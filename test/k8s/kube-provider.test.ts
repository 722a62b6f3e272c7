// controller/provider/kube against a real API server: informers produce the
// same ClusterSnapshot shape as the local provider; status written with
// server-side apply and observedGeneration, from the shared translator.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { KubeProvider } from "../../controller/provider/kube/kube-provider.js";
import { statusFromTranslation } from "../../controller/provider/kube/status-from-translation.js";
import { StatusWriter } from "../../controller/provider/kube/status-writer.js";
import { LocalProvider } from "../../controller/provider/local/local-provider.js";
import { emptySnapshot, type KubeObject } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import {
  DEMO,
  find,
  reportPodRunning,
  root,
  skip,
  snapshotWhere,
  startProviderCluster,
} from "./kube-fixtures.js";

t.test("kube provider on a real API server", { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const { c, client } = await startProviderCluster();
  t.teardown(() => c.stop());

  await t.test(
    "informers: a labelled namespace, a pod and a service, in the local provider's snapshot shape",
    async (t) => {
      const p = new KubeProvider({ client, debounceMs: 20 });
      t.teardown(() => p.close());
      await p.start();
      t.ok(p.isSynced());
      t.same(p.missingKinds(), [], "every CRD the provider watches is installed");

      await c.kubectl(["apply", "-f", "-"], { input: DEMO });
      // The API server assigns the pod's IP in no test (no kubelet): report it as a kubelet would.
      await reportPodRunning(c, "demo", "client", "10.244.1.5");
      const s = await snapshotWhere(
        p,
        (s) => {
          const pod = find(s.pods, "demo", "client");
          return (
            !!pod?.status?.podIP &&
            !!find(s.services, "demo", "server") &&
            !!find(s.serviceAccounts, "demo", "client")
          );
        },
        "the demo objects",
      );

      t.same(
        Object.keys(s).sort(),
        Object.keys(emptySnapshot()).sort(),
        "snapshot has exactly the ClusterSnapshot fields",
      );
      const ns = find(s.namespaces, undefined, "demo");
      t.equal(ns?.apiVersion, "v1");
      t.equal(ns?.kind, "Namespace");
      t.equal(ns?.metadata.labels?.["ambit.dev/dataplane-mode"], "ambient");
      const pod = find(s.pods, "demo", "client");
      t.equal(pod?.kind, "Pod");
      t.equal(pod?.spec.nodeName, "node-1");
      t.equal(pod?.status?.podIP, "10.244.1.5");
      t.equal(pod?.spec.serviceAccountName, "client");
      t.notOk(pod && "managedFields" in pod.metadata, "managedFields dropped");
      const svc = find(s.services, "demo", "server");
      t.match(svc?.spec.clusterIP, /^10\.96\./, "a real ClusterIP");
      t.equal(find(s.nodes, undefined, "node-1")?.status?.addresses?.[0]?.address, "10.1.0.1");
      const keys = s.pods.map((o) => `${o.metadata.namespace}/${o.metadata.name}`);
      t.same(keys, [...keys].sort(), "sorted by namespace/name");

      const dir = await mkdtemp(join(tmpdir(), "ambit-t-kube-"));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, "demo.yaml"), DEMO);
      const local = new LocalProvider({ dir });
      t.teardown(() => local.close());
      await local.start();
      const ls = local.snapshot();
      // Everything the local provider reads from the same YAML, the kube provider
      // has too; the API server adds only its defaults (protocol: TCP, the
      // kubernetes.io/metadata.name label...), which the translator defaults alike.
      const shape = (o: KubeObject | undefined) =>
        o && {
          apiVersion: o.apiVersion,
          kind: o.kind,
          name: o.metadata.name,
          namespace: o.metadata.namespace,
          labels: o.metadata.labels,
        };
      t.has(
        shape(ns),
        shape(find(ls.namespaces, undefined, "demo")),
        "namespace as the local provider has it",
      );
      t.has(shape(pod), shape(find(ls.pods, "demo", "client")), "pod as the local provider has it");
      t.has(
        pod?.spec.containers,
        find(ls.pods, "demo", "client")?.spec.containers,
        "containers as the local provider has them",
      );
      t.has(
        svc?.spec,
        { ports: find(ls.services, "demo", "server")?.spec.ports, selector: { app: "server" } },
        "service as the local provider has it",
      );
      t.same(
        Object.keys(ls)
          .filter((k) => k !== "sources")
          .sort(),
        Object.keys(s).sort(),
        "same snapshot fields as the local provider",
      );

      // Deletions reach the snapshot too.
      await c.kubectl(["delete", "service", "server", "-n", "demo"]);
      await snapshotWhere(p, (s) => !find(s.services, "demo", "server"), "the service gone");
      t.pass("deletion seen");
    },
  );

  await t.test("a CRD installed after start is picked up", async (t) => {
    await c.kubectl(["delete", "crd", "trafficpolicies.ambit.dev", "--wait=true"]);
    const p = new KubeProvider({ client, debounceMs: 20, missingCrdRetryMs: 200 });
    t.teardown(() => p.close());
    await p.start();
    t.same(p.missingKinds(), ["TrafficPolicy"]);
    await c.kubectl([
      "apply",
      "--server-side",
      "-f",
      join(root, "manifests/crds/ambit.dev_trafficpolicies.yaml"),
    ]);
    await c.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/trafficpolicies.ambit.dev",
    ]);
    await c.kubectl(["apply", "-f", "-"], {
      input: `apiVersion: ambit.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: tp, namespace: demo }
spec: { targetRef: { kind: Service, name: server }, loadBalancer: { simple: ROUND_ROBIN } }
`,
    });
    const s = await snapshotWhere(p, (s) => !!find(s.trafficPolicies, "demo", "tp"), "the TrafficPolicy");
    t.equal(find(s.trafficPolicies, "demo", "tp")?.spec.loadBalancer?.simple, "ROUND_ROBIN");
    t.same(p.missingKinds(), []);
  });

  await t.test("status: server-side apply with observedGeneration, no rewrite when unchanged", async (t) => {
    const p = new KubeProvider({ client, debounceMs: 20 });
    t.teardown(() => p.close());
    await p.start();
    const writer = new StatusWriter({ client, lookup: (k, ns, n) => p.get(k, ns, n) });
    await c.kubectl(["apply", "-f", "-"], {
      input: `apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: demo }
spec: { action: DENY, rules: [{}] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: ambit-waypoint }
spec: { controllerName: ambit.dev/mesh-controller }
`,
    });
    await snapshotWhere(
      p,
      (s) => !!find(s.authorizationPolicies, "demo", "deny-all") && s.gatewayClasses.length > 0,
      "the policy",
    );
    const accepted = {
      conditions: [{ type: "Accepted", status: "True" as const, reason: "Accepted", message: "translated" }],
    };
    t.equal(
      await writer.apply({
        kind: "AuthorizationPolicy",
        namespace: "demo",
        name: "deny-all",
        status: accepted,
      }),
      "written",
    );
    let ap = JSON.parse(
      (
        await c.kubectl([
          "get",
          "authorizationpolicy",
          "-n",
          "demo",
          "deny-all",
          "-o",
          "json",
          "--show-managed-fields",
        ])
      ).stdout,
    );
    t.equal(ap.metadata.generation, 1);
    t.equal(ap.status.observedGeneration, 1);
    t.equal(ap.status.conditions[0].observedGeneration, 1);
    t.equal(ap.status.conditions[0].status, "True");
    const firstTransition = ap.status.conditions[0].lastTransitionTime;
    t.ok(firstTransition);
    t.ok(
      ap.metadata.managedFields.some(
        (m: { manager: string; subresource?: string }) =>
          m.manager === "ambit-controller" && m.subresource === "status",
      ),
      "owned by the ambit-controller field manager",
    );

    await snapshotWhere(
      p,
      (s) => !!find(s.authorizationPolicies, "demo", "deny-all")?.status?.conditions?.length,
      "the status echoed",
    );
    t.equal(
      await writer.apply({
        kind: "AuthorizationPolicy",
        namespace: "demo",
        name: "deny-all",
        status: accepted,
      }),
      "unchanged",
    );

    // A spec change bumps the generation; the next write says so and keeps the transition time.
    await c.kubectl([
      "patch",
      "authorizationpolicy",
      "deny-all",
      "-n",
      "demo",
      "--type=merge",
      "-p",
      '{"spec":{"action":"AUDIT"}}',
    ]);
    await snapshotWhere(
      p,
      (s) => find(s.authorizationPolicies, "demo", "deny-all")?.metadata.generation === 2,
      "generation 2",
    );
    t.equal(
      await writer.apply({
        kind: "AuthorizationPolicy",
        namespace: "demo",
        name: "deny-all",
        status: accepted,
      }),
      "written",
    );
    ap = JSON.parse(
      (await c.kubectl(["get", "authorizationpolicy", "-n", "demo", "deny-all", "-o", "json"])).stdout,
    );
    t.equal(ap.status.observedGeneration, 2);
    t.equal(ap.status.conditions[0].observedGeneration, 2);
    t.equal(
      ap.status.conditions[0].lastTransitionTime,
      firstTransition,
      "status unchanged: transition time kept",
    );

    // Gateway API status (its schema requires reason, message and lastTransitionTime).
    t.equal(
      await writer.apply({
        kind: "GatewayClass",
        name: "ambit-waypoint",
        status: { conditions: [{ type: "Accepted", status: "True", reason: "Accepted" }] },
      }),
      "written",
    );
    const gc = JSON.parse((await c.kubectl(["get", "gatewayclass", "ambit-waypoint", "-o", "json"])).stdout);
    t.equal(gc.status.conditions.find((x: { type: string }) => x.type === "Accepted")?.observedGeneration, 1);

    const follower = new StatusWriter({ client, isLeader: () => false });
    t.equal(
      await follower.apply({
        kind: "AuthorizationPolicy",
        namespace: "demo",
        name: "deny-all",
        status: accepted,
      }),
      "not-leader",
    );
    t.equal(
      await writer.apply({ kind: "AuthorizationPolicy", namespace: "demo", name: "gone", status: accepted }),
      "missing",
    );
  });

  await t.test(
    "status from the translator: the shared pure translator's verdict reaches the API",
    async (t) => {
      const p = new KubeProvider({ client, debounceMs: 20 });
      t.teardown(() => p.close());
      await p.start();
      await c.kubectl(["apply", "-f", "-"], {
        input: `apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: bad-cidr, namespace: demo }
spec: { rules: [{ from: [{ source: { ipBlocks: ["not-a-cidr"] } }] }] }
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: demo }
spec: { selector: { app: server }, ports: [{ name: http, port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules: [{ backendRefs: [{ name: server, port: 80 }] }]
`,
      });
      const s = await snapshotWhere(
        p,
        (s) =>
          !!find(s.authorizationPolicies, "demo", "bad-cidr") &&
          !!find(s.httpRoutes, "demo", "split") &&
          !!find(s.services, "demo", "server"),
        "the objects",
      );
      const writer = new StatusWriter({ client, lookup: (k, ns, n) => p.get(k, ns, n) });
      const results = await writer.applyAll(statusFromTranslation(s, translate(s)));
      t.equal(results.get("AuthorizationPolicy demo/bad-cidr"), "written");
      t.equal(results.get("HTTPRoute demo/split"), "written");
      const ap = JSON.parse(
        (await c.kubectl(["get", "authorizationpolicy", "-n", "demo", "bad-cidr", "-o", "json"])).stdout,
      );
      t.match(ap.status.conditions[0], {
        type: "Accepted",
        status: "False",
        reason: "Invalid",
        message: /ipBlocks\[0\]/,
        observedGeneration: 1,
      });
      const cols = (await c.kubectl(["get", "authorizationpolicy", "-n", "demo", "bad-cidr"])).stdout;
      t.match(cols, /bad-cidr\s+False/, "the Accepted printer column shows it");
      const route = JSON.parse(
        (await c.kubectl(["get", "httproute", "-n", "demo", "split", "-o", "json"])).stdout,
      );
      t.match(route.status.parents, [
        {
          controllerName: "ambit.dev/mesh-controller",
          parentRef: { kind: "Service", name: "server" },
          conditions: [
            { type: "Accepted", status: "True", observedGeneration: 1 },
            { type: "ResolvedRefs", status: "True" },
          ],
        },
      ]);
      // Once echoed back through the informers, the same verdict writes nothing.
      const echoed = await snapshotWhere(
        p,
        (s) =>
          !!find(s.httpRoutes, "demo", "split")?.status?.parents?.length &&
          !!find(s.authorizationPolicies, "demo", "bad-cidr")?.status?.conditions?.length,
        "the statuses echoed",
      );
      const again = await writer.applyAll(statusFromTranslation(echoed, translate(echoed)));
      t.equal(again.get("HTTPRoute demo/split"), "unchanged");
      t.equal(again.get("AuthorizationPolicy demo/bad-cidr"), "unchanged");
    },
  );
});

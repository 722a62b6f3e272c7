// controller/provider/kube against a real API server: informers produce the
// same ClusterSnapshot shape as the local provider; Lease leader election;
// status written with server-side apply and observedGeneration; TokenReview
// CA authentication.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { loadOrCreateCaFromSecret } from "../../controller/provider/kube/ca-root-secret.js";
import { KubeClient } from "../../controller/provider/kube/client.js";
import { KubeProvider } from "../../controller/provider/kube/kube-provider.js";
import { KubeRuntime } from "../../controller/provider/kube/kube-runtime.js";
import { LeaderElector } from "../../controller/provider/kube/leader-election.js";
import { statusFromTranslation } from "../../controller/provider/kube/status-from-translation.js";
import { StatusWriter } from "../../controller/provider/kube/status-writer.js";
import { TokenReviewAuthenticator } from "../../controller/provider/kube/tokenreview-authn.js";
import { LocalProvider } from "../../controller/provider/local/local-provider.js";
import { type ClusterSnapshot, emptySnapshot, type KubeObject } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import { clusterUnavailableReason, startCluster } from "./cluster.js";

const skip = clusterUnavailableReason();
const root = process.cwd();

/** Resolves with the first snapshot (the current one included) that satisfies `pred`. */
function snapshotWhere(
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

function once(
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

const find = <T extends KubeObject>(list: T[], ns: string | undefined, name: string) =>
  list.find((o) => o.metadata.name === name && o.metadata.namespace === ns);

const DEMO = `
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

const NODE = (name: string, ip: string) => `
apiVersion: v1
kind: Node
metadata: { name: ${name}, labels: { kubernetes.io/hostname: ${name} } }
status: { addresses: [{ type: InternalIP, address: ${ip} }] }
`;

t.test("kube provider on a real API server", { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const c = await startCluster({ scheduler: false });
  t.teardown(() => c.stop());
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
      await c.kubectl([
        "patch",
        "pod",
        "client",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({
          status: {
            phase: "Running",
            podIP: "10.244.1.5",
            podIPs: [{ ip: "10.244.1.5" }],
            conditions: [{ type: "Ready", status: "True" }],
          },
        }),
      ]);
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

  await t.test("leader election: one leader; the other takes over when it closes", async (t) => {
    await c.kubectl(["create", "namespace", "ambit-system"]);
    const opts = {
      client,
      namespace: "ambit-system",
      leaseDurationSeconds: 3,
      renewDeadlineMs: 2000,
      retryPeriodMs: 200,
    };
    const a = new LeaderElector({ ...opts, identity: "replica-a" });
    const b = new LeaderElector({ ...opts, identity: "replica-b" });
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const aLeads = once(a, "started-leading");
    a.start();
    await aLeads;
    b.start();
    // b has seen a's lease (it observes the holder on its first attempt) and stays a follower.
    await new Promise<void>((resolve) =>
      b.leader() === "replica-a" ? resolve() : b.once("leader", () => resolve()),
    );
    t.equal(b.leader(), "replica-a");
    t.ok(a.isLeader());
    t.notOk(b.isLeader(), "only one leader");
    const lease = JSON.parse(
      (await c.kubectl(["get", "lease", "-n", "ambit-system", "ambit-controller", "-o", "json"])).stdout,
    );
    t.equal(lease.spec.holderIdentity, "replica-a");

    const bLeads = once(b, "started-leading");
    const started = Date.now();
    await a.close();
    t.notOk(a.isLeader());
    await bLeads;
    t.ok(Date.now() - started < 3000, "released lease is taken over before it would expire");
    t.ok(b.isLeader());
    const after = JSON.parse(
      (await c.kubectl(["get", "lease", "-n", "ambit-system", "ambit-controller", "-o", "json"])).stdout,
    );
    t.equal(after.spec.holderIdentity, "replica-b");
    t.equal(after.spec.leaseTransitions, 1);
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

  await t.test("CA callers: a ztunnel's projected token names its node (TokenReview)", async (t) => {
    await c.kubectl(["apply", "-f", "-"], {
      input: `${NODE("node-2", "10.1.0.2")}
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ambit-ztunnel, namespace: ambit-system }
---
apiVersion: v1
kind: Pod
metadata: { name: ztunnel-node-2, namespace: ambit-system }
spec:
  serviceAccountName: ambit-ztunnel
  automountServiceAccountToken: false
  nodeName: node-2
  containers: [{ name: ztunnel, image: ambit }]
`,
    });
    const token = async (sa: string, ns: string, pod: string | undefined, audience: string) =>
      (
        await c.kubectl([
          "create",
          "token",
          sa,
          "-n",
          ns,
          `--audience=${audience}`,
          ...(pod ? ["--bound-object-kind=Pod", `--bound-object-name=${pod}`] : []),
        ])
      ).stdout.trim();
    const authn = new TokenReviewAuthenticator({
      client,
      allowedServiceAccounts: ["ambit-system/ambit-ztunnel"],
    });

    const good = await token("ambit-ztunnel", "ambit-system", "ztunnel-node-2", "ambit-ca");
    t.same(await authn.authenticateToken(good), {
      node: "node-2",
      via: "tokenreview:ambit-system/ambit-ztunnel",
    });
    t.equal(
      await authn.authenticateToken(
        await token("ambit-ztunnel", "ambit-system", "ztunnel-node-2", "somebody-else"),
      ),
      null,
      "wrong audience",
    );
    t.equal(
      await authn.authenticateToken(await token("ambit-ztunnel", "ambit-system", undefined, "ambit-ca")),
      null,
      "not bound to a pod",
    );
    t.equal(
      await authn.authenticateToken(await token("client", "demo", "client", "ambit-ca")),
      null,
      "not the ztunnel service account",
    );
    t.equal(await authn.authenticateToken("not-a-token"), null, "garbage");

    // A token outlives nothing: once its pod is gone, it is refused (past the cache).
    const fresh = new TokenReviewAuthenticator({
      client,
      allowedServiceAccounts: ["ambit-system/ambit-ztunnel"],
      cacheMs: 0,
    });
    await c.kubectl(["delete", "pod", "ztunnel-node-2", "-n", "ambit-system", "--grace-period=0", "--force"]);
    t.equal(await fresh.authenticateToken(good), null, "pod deleted: token refused");
  });

  await t.test("CA root in a Secret: replicas racing on first start end with one root", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "ambit-t-ca-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const opts = { client, namespace: "ambit-system", trustDomain: "cluster.local" };
    const [a, b] = await Promise.all([
      loadOrCreateCaFromSecret({ ...opts, dir: join(dir, "a") }),
      loadOrCreateCaFromSecret({ ...opts, dir: join(dir, "b") }),
    ]);
    t.equal(a.ca.rootPem, b.ca.rootPem, "one root for both");
    t.same([a.origin, b.origin].sort(), ["created", "secret"]);
    const later = await loadOrCreateCaFromSecret({ ...opts, dir: join(dir, "c") });
    t.equal(later.origin, "secret");
    t.equal(later.ca.rootPem, a.ca.rootPem, "a restarted replica keeps the root");
    const secret = JSON.parse(
      (await c.kubectl(["get", "secret", "-n", "ambit-system", "ambit-ca-root", "-o", "json"])).stdout,
    );
    t.ok(secret.data["ca-key.pem"] && secret.data["ca-cert.pem"]);
  });

  await t.test("KubeRuntime: two replicas, only the leader writes; the other takes over", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "ambit-t-rt-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const make = (identity: string) => {
      const rt = new KubeRuntime({
        client,
        namespace: "ambit-system",
        identity,
        leaseName: "ambit-runtime-test",
        trustDomain: "cluster.local",
        caDir: join(dir, identity),
        allowedServiceAccounts: ["ambit-system/ambit-ztunnel"],
        leaseDurationSeconds: 3,
        renewDeadlineMs: 2000,
        retryPeriodMs: 200,
        debounceMs: 20,
      });
      // What the controller's wiring point does after each translation.
      rt.provider.on("snapshot", (s: ClusterSnapshot) => rt.publishStatus(s, translate(s)));
      return rt;
    };
    const a = make("rt-a");
    const b = make("rt-b");
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const [ca, cb] = await Promise.all([a.start(), b.start()]);
    t.equal(ca.ca.rootPem, cb.ca.rootPem, "one mesh root");
    const first = await Promise.race([
      once(a.elector, "started-leading").then(() => a),
      once(b.elector, "started-leading").then(() => b),
    ]);
    const other = first === a ? b : a;
    t.notOk(other.elector.isLeader(), "one leader");

    await c.kubectl(["apply", "-f", "-"], {
      input: `apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: rt-strict, namespace: demo }
spec: { mtls: { mode: STRICT } }
`,
    });
    await snapshotWhere(
      first.provider,
      (s) => find(s.peerAuthentications, "demo", "rt-strict")?.status?.conditions?.[0]?.status === "True",
      "status by the leader",
    );
    const pa = JSON.parse(
      (
        await c.kubectl([
          "get",
          "peerauthentication",
          "-n",
          "demo",
          "rt-strict",
          "-o",
          "json",
          "--show-managed-fields",
        ])
      ).stdout,
    );
    t.same(
      pa.metadata.managedFields
        .filter((m: { subresource?: string }) => m.subresource === "status")
        .map((m: { manager: string }) => m.manager),
      ["ambit-controller"],
    );
    await snapshotWhere(
      first.provider,
      (s) => !!find(s.gatewayClasses, undefined, "ambit-waypoint")?.status?.conditions?.length,
      "the GatewayClass accepted",
    );
    await first.idle();
    const cm = JSON.parse(
      (await c.kubectl(["get", "configmap", "-n", "ambit-system", "ambit-ca-root-cert", "-o", "json"]))
        .stdout,
    );
    t.equal(cm.data["root-cert.pem"], ca.ca.rootPem, "root certificate published for the ztunnels");

    const takeover = once(other.elector, "started-leading");
    await first.close();
    await takeover;
    await c.kubectl(["apply", "-f", "-"], {
      input: `apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: { name: rt-fault, namespace: demo }
spec: { abort: { httpStatus: 503, percentage: { value: 10 } } }
`,
    });
    await snapshotWhere(
      other.provider,
      (s) => find(s.faultInjections, "demo", "rt-fault")?.status?.conditions?.[0]?.status === "True",
      "status by the new leader",
    );
    t.pass("the new leader writes status");
  });
});

// The controller's cluster duties against a real API server: Lease leader
// election, TokenReview CA authentication, the CA root Secret, and
// KubeRuntime (two replicas, leader-only writes, takeover).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { loadOrCreateCaFromSecret } from "../../controller/provider/kube/ca-root-secret.js";
import { KubeRuntime } from "../../controller/provider/kube/kube-runtime.js";
import { LeaderElector } from "../../controller/provider/kube/leader-election.js";
import { TokenReviewAuthenticator } from "../../controller/provider/kube/tokenreview-authn.js";
import type { ClusterSnapshot } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import {
  DEMO,
  find,
  NODE,
  once,
  skip,
  snapshotWhere,
  startProviderCluster,
  ZTUNNEL_POD,
} from "./kube-fixtures.js";

t.test("controller duties on a real API server", { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const { c, client } = await startProviderCluster();
  t.teardown(() => c.stop());
  await c.kubectl(["apply", "-f", "-"], { input: DEMO });
  await c.kubectl(["create", "namespace", "ambit-system"]);

  await t.test("leader election: one leader; the other takes over when it closes", async (t) => {
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

  await t.test("CA callers: a ztunnel's projected token names its node (TokenReview)", async (t) => {
    await c.kubectl(["apply", "-f", "-"], {
      input: `${NODE("node-2", "10.1.0.2")}
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ambit-ztunnel, namespace: ambit-system }
---
${ZTUNNEL_POD("node-2")}`,
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
    // Another pod's bound token (a waypoint's) names its node but only its own identity.
    t.same(
      await authn.authenticateToken(await token("client", "demo", "client", "ambit-ca")),
      {
        node: "node-1",
        via: "tokenreview:demo/client",
        self: { namespace: "demo", serviceAccount: "client" },
      },
      "not the ztunnel service account: itself only",
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

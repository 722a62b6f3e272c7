// manifests/ against a real API server: the CRDs install and are enforced
// (an invalid ambit.dev object is rejected with the field named), and the whole
// kustomization applies with least-privilege RBAC.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { parseAllDocuments } from "yaml";
import { KubeClient } from "../../controller/provider/kube/client.js";
import { ensureWaypointGatewayClass } from "../../controller/provider/kube/gateway-class.js";
import { type Cluster, clusterUnavailableReason, startCluster } from "./cluster.js";

const root = process.cwd();
const manifests = join(root, "manifests");
const skip = clusterUnavailableReason();

/** Rejects with kubectl's stderr when the apply fails. */
async function applyYaml(c: Cluster, yaml: string): Promise<string> {
  return (await c.kubectl(["apply", "-f", "-"], { input: yaml })).stdout;
}

async function rejection(c: Cluster, yaml: string): Promise<string> {
  try {
    await applyYaml(c, yaml);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`expected the API server to reject:\n${yaml}`);
}

t.test("manifests on a real API server", { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const c = await startCluster({ scheduler: false });
  t.teardown(() => c.stop());

  await t.test("kubectl apply -k manifests/ succeeds in one go on an empty cluster", async (t) => {
    const out = (await c.kubectl(["apply", "-k", manifests], { timeoutMs: 120_000 })).stdout;
    t.match(
      out,
      /customresourcedefinition.apiextensions.k8s.io\/httproutes.gateway.networking.k8s.io created/,
    );
    t.match(out, /customresourcedefinition.apiextensions.k8s.io\/authorizationpolicies.ambit.dev created/);
    t.match(out, /namespace\/ambit-system created/);
    t.match(out, /deployment.apps\/ambit-controller created/);
    t.match(out, /daemonset.apps\/ambit-ztunnel created/);
    // Applying again changes nothing.
    const again = (await c.kubectl(["apply", "-k", manifests], { timeoutMs: 120_000 })).stdout;
    t.notMatch(again, / created$/m, "nothing new the second time");
    for (const o of [
      "daemonset.apps/ambit-ztunnel",
      "deployment.apps/ambit-controller",
      "customresourcedefinition.apiextensions.k8s.io/authorizationpolicies.ambit.dev",
    ]) {
      t.match(again, `${o} unchanged`, `${o} unchanged`);
    }
  });

  await t.test("CRDs become Established", async (t) => {
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
      "crd/gateways.gateway.networking.k8s.io",
      "crd/httproutes.gateway.networking.k8s.io",
      "crd/grpcroutes.gateway.networking.k8s.io",
      "crd/gatewayclasses.gateway.networking.k8s.io",
    ]);
    const names = (await c.kubectl(["get", "crd", "-o", "jsonpath={.items[*].metadata.name}"])).stdout.split(
      " ",
    );
    for (const n of [
      "authorizationpolicies",
      "peerauthentications",
      "requestauthentications",
      "faultinjections",
      "trafficpolicies",
    ]) {
      t.ok(names.includes(`${n}.ambit.dev`), `${n}.ambit.dev installed`);
    }
    // The Gateway API files are the upstream ones, unmodified (checked where the upstream copy is at hand).
    const upstreamDir = join(root, "../shared/crds/gateway-api-v1.6.1/standard");
    if (existsSync(upstreamDir)) {
      for (const f of readdirSync(upstreamDir)) {
        t.equal(
          readFileSync(join(manifests, "gateway-api", f), "utf8"),
          readFileSync(join(upstreamDir, f), "utf8"),
          `${f} is the upstream file`,
        );
      }
    }
    for (const f of readdirSync(join(manifests, "gateway-api")).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml",
    )) {
      t.match(
        readFileSync(join(manifests, "gateway-api", f), "utf8"),
        /gateway.networking.k8s.io\/bundle-version: v1.6.1/,
        `${f}: v1.6.1`,
      );
    }
  });

  await t.test("valid ambit.dev objects of every kind are accepted", async (t) => {
    const out = await applyYaml(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: allow-client, namespace: default }
spec:
  selector: { matchLabels: { app: server } }
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/client"], namespaces: [default] } }]
    to: [{ operation: { ports: ["8080", 9090], methods: [GET], paths: ["/api/*"] } }]
    when: [{ key: "request.headers[x-id]", values: ["a"] }]
---
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: strict, namespace: default }
spec:
  selector: { matchLabels: { app: server } }
  mtls: { mode: STRICT }
  portLevelMtls: { "8080": { mode: PERMISSIVE } }
---
apiVersion: ambit.dev/v1alpha1
kind: RequestAuthentication
metadata: { name: jwt, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: waypoint }]
  jwtRules: [{ issuer: "https://issuer.example", audiences: [api], jwksUri: "https://issuer.example/jwks", timeout: 5s }]
---
apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: { name: slow, namespace: default }
spec:
  delay: { fixedDelay: 100ms, percentage: { value: 12.5 } }
  abort: { grpcStatus: UNAVAILABLE, percentage: { value: 1 } }
---
apiVersion: ambit.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: server, namespace: default }
spec:
  targetRefs: [{ kind: Service, name: server }]
  loadBalancer: { consistentHash: { httpHeaderName: x-user } }
  connectionPool: { tcp: { maxConnections: 100, connectTimeout: 2s } }
  outlierDetection: { consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s }
  rateLimit: { tokenBucket: { maxTokens: 10, fillInterval: 1s } }
`,
    );
    t.match(out, /authorizationpolicy.ambit.dev\/allow-client created/);
    t.match(out, /trafficpolicy.ambit.dev\/server created/);
    const cols = (await c.kubectl(["get", "authorizationpolicies", "-n", "default"])).stdout;
    t.match(cols, /NAME\s+ACTION\s+ACCEPTED\s+AGE/, "printer columns");
    t.match(cols, /allow-client\s+ALLOW/);
  });

  await t.test("invalid ambit.dev objects are rejected with the field named", async (t) => {
    const badEnum = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: bad-mode, namespace: default }
spec: { mtls: { mode: SOMETIMES } }
`,
    );
    t.match(badEnum, /spec\.mtls\.mode/, "names the field");
    t.match(badEnum, /Unsupported value: "SOMETIMES"/);

    const badAction = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: bad-action, namespace: default }
spec: { action: PERMIT }
`,
    );
    t.match(badAction, /spec\.action/);

    const unknownField = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: typo, namespace: default }
spec: { rules: [{ form: [{ source: { namespaces: [x] } }] }] }
`,
    );
    t.match(
      unknownField,
      /unknown field "spec\.rules\[0\]\.form"/,
      "typos are not silently dropped (kubectl's strict field validation)",
    );

    const cel = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: both, namespace: default }
spec:
  selector: { matchLabels: { app: a } }
  targetRefs: [{ kind: Service, name: a }]
`,
    );
    t.match(cel, /only one of selector, targetRef or targetRefs may be set/);

    const abort = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: { name: both-codes, namespace: default }
spec: { abort: { httpStatus: 503, grpcStatus: UNAVAILABLE } }
`,
    );
    t.match(abort, /spec\.abort/);
    t.match(abort, /exactly one of httpStatus or grpcStatus/);

    const duration = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: { name: bad-delay, namespace: default }
spec: { delay: { fixedDelay: soon } }
`,
    );
    t.match(duration, /spec\.delay\.fixedDelay/);

    const port = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: bad-port, namespace: default }
spec:
  selector: { matchLabels: { app: a } }
  portLevelMtls: { http: { mode: STRICT } }
`,
    );
    t.match(port, /spec\.portLevelMtls/);
    t.match(port, /port numbers/);

    const target = await rejection(
      c,
      `
apiVersion: ambit.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: bad-target, namespace: default }
spec: { targetRefs: [{ kind: Deployment, group: apps, name: x }] }
`,
    );
    t.match(target, /spec\.targetRefs\[0\]/);
  });

  await t.test("controller, ztunnel and the waypoint GatewayClass as installed", async (t) => {
    const ds = JSON.parse(
      (await c.kubectl(["get", "ds", "-n", "ambit-system", "ambit-ztunnel", "-o", "json"])).stdout,
    );
    t.equal(ds.spec.template.spec.hostNetwork, true);
    t.same(ds.spec.updateStrategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
    t.same(ds.spec.template.spec.containers[0].securityContext.capabilities.add, ["NET_ADMIN", "SYS_ADMIN"]);
    const dep = JSON.parse(
      (await c.kubectl(["get", "deploy", "-n", "ambit-system", "ambit-controller", "-o", "json"])).stdout,
    );
    t.equal(dep.spec.replicas, 2);
    const svc = JSON.parse(
      (await c.kubectl(["get", "svc", "-n", "ambit-system", "ambit-controller", "-o", "json"])).stdout,
    );
    t.same(svc.spec.ports.map((p: { port: number }) => p.port).sort(), [15010, 15012]);

    // The controller creates the class (it cannot ride in the same apply as its CRD).
    const client = KubeClient.fromSource({ kubeconfigPath: c.kubeconfigPath });
    t.equal(await ensureWaypointGatewayClass(client), "applied");
    t.equal(await ensureWaypointGatewayClass(client), "applied", "idempotent");
    const gc = JSON.parse((await c.kubectl(["get", "gatewayclass", "ambit-waypoint", "-o", "json"])).stdout);
    t.equal(gc.spec.controllerName, "ambit.dev/mesh-controller");
    // And as the controller's own service account, with the RBAC of manifests/.
    const asController = await c.kubectl(
      [
        "auth",
        "can-i",
        "patch",
        "gatewayclasses.gateway.networking.k8s.io/ambit-waypoint",
        "--as=system:serviceaccount:ambit-system:ambit-controller",
      ],
      { allowFailure: true },
    );
    t.equal(asController.stdout.trim(), "yes");
  });

  await t.test(
    "RBAC is least privilege: no wildcards; ztunnel may only read pods, namespaces and its DaemonSet",
    async (t) => {
      const docs = parseAllDocuments(readFileSync(join(manifests, "install/rbac.yaml"), "utf8")).map((d) =>
        d.toJS(),
      );
      const rules = docs.filter((d) => d.kind === "ClusterRole" || d.kind === "Role").flatMap((d) => d.rules);
      t.ok(rules.length > 0);
      for (const r of rules) {
        for (const f of ["apiGroups", "resources", "verbs"])
          t.notOk((r[f] as string[]).includes("*"), `no wildcard in ${f}: ${JSON.stringify(r)}`);
      }
      // As the API server decides it, for the real service accounts.
      const can = async (sa: string, verb: string, res: string, ns?: string, subresource?: string) => {
        const args = [
          "auth",
          "can-i",
          verb,
          res,
          `--as=system:serviceaccount:ambit-system:${sa}`,
          ...(ns ? ["-n", ns] : ["-A"]),
        ];
        if (subresource) args.push(`--subresource=${subresource}`);
        return (await c.kubectl(args, { allowFailure: true })).stdout.trim();
      };
      t.equal(await can("ambit-controller", "watch", "pods"), "yes");
      t.equal(
        await can("ambit-controller", "patch", "httproutes.gateway.networking.k8s.io", undefined, "status"),
        "yes",
      );
      t.equal(
        await can(
          "ambit-controller",
          "update",
          "leases.coordination.k8s.io/ambit-controller",
          "ambit-system",
        ),
        "yes",
      );
      t.equal(
        await can("ambit-controller", "update", "leases.coordination.k8s.io/other", "ambit-system"),
        "no",
      );
      t.equal(await can("ambit-controller", "create", "tokenreviews.authentication.k8s.io"), "yes");
      t.equal(
        await can("ambit-controller", "get", "secrets", "default"),
        "no",
        "no secrets outside ambit-system",
      );
      t.equal(await can("ambit-controller", "delete", "pods"), "no");
      t.equal(await can("ambit-ztunnel", "list", "pods"), "no");
    },
  );
});

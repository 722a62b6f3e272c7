// Properties of the translator over generated snapshots: it never throws,
// it is deterministic, every policy a workload lists exists, every workload
// key and service key is unique, and enrolment follows the labels.
import fc from "fast-check";
import t from "tap";
import type {
  AuthorizationPolicy,
  ClusterSnapshot,
  MtlsMode,
  Namespace,
  PeerAuthentication,
  Pod,
  Service,
} from "../../controller/provider/objects.js";
import { emptySnapshot } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";
import { policyKey } from "../../core/model/types.js";

const NAMESPACES = ["ambit-system", "a", "b"];
const APPS = ["x", "y", "z"];
const MODES: MtlsMode[] = ["UNSET", "PERMISSIVE", "STRICT", "DISABLE"];

const labels = fc.record({ app: fc.constantFrom(...APPS) }, { requiredKeys: [] });
const mode = fc.constantFrom(...MODES);

const namespace = (name: string) =>
  fc.record({ ambient: fc.boolean() }).map(
    ({ ambient }): Namespace => ({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name, labels: ambient ? { "ambit.dev/dataplane-mode": "ambient" } : {} },
    }),
  );

const pod = (i: number) =>
  fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      labels,
      optOut: fc.boolean(),
      ip: fc.boolean(),
      port: fc.constantFrom(8080, 9090),
    })
    .map(
      (g): Pod => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: `p${i}`,
          namespace: g.ns,
          labels: { ...g.labels, ...(g.optOut ? { "ambit.dev/dataplane-mode": "none" } : {}) },
        },
        spec: {
          nodeName: "node-1",
          containers: [{ name: "c", ports: [{ name: "http", containerPort: g.port }] }],
        },
        ...(g.ip ? { status: { podIP: `10.244.0.${i + 1}` } } : {}),
      }),
    );

const service = (i: number) =>
  fc.record({ ns: fc.constantFrom(...NAMESPACES), app: fc.constantFrom(...APPS), named: fc.boolean() }).map(
    (g): Service => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: `s${i}`, namespace: g.ns },
      spec: {
        clusterIP: `10.96.0.${i + 1}`,
        selector: { app: g.app },
        ports: [{ name: "http", port: 80, targetPort: g.named ? "http" : 8080 }],
      },
    }),
  );

const authz = (i: number) =>
  fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      selector: fc.option(labels, { nil: undefined }),
      action: fc.constantFrom("ALLOW", "DENY", "AUDIT"),
      methods: fc.boolean(),
      ports: fc.array(fc.constantFrom("80", "8080", "x"), { maxLength: 2 }),
    })
    .map(
      (g): AuthorizationPolicy => ({
        apiVersion: "ambit.dev/v1alpha1",
        kind: "AuthorizationPolicy",
        metadata: { name: `ap${i}`, namespace: g.ns },
        spec: {
          ...(g.selector ? { selector: { matchLabels: g.selector } } : {}),
          action: g.action as "ALLOW",
          rules: [{ to: [{ operation: { ports: g.ports, ...(g.methods ? { methods: ["GET"] } : {}) } }] }],
        },
      }),
    );

const peerAuthn = (i: number) =>
  fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      selector: fc.option(labels, { nil: undefined }),
      mode,
      portMode: fc.option(mode, { nil: undefined }),
      created: fc.integer({ min: 0, max: 3 }),
    })
    .map(
      (g): PeerAuthentication => ({
        apiVersion: "ambit.dev/v1alpha1",
        kind: "PeerAuthentication",
        metadata: {
          name: `pa${i}`,
          namespace: g.ns,
          creationTimestamp: `2026-01-0${g.created + 1}T00:00:00Z`,
        },
        spec: {
          ...(g.selector && Object.keys(g.selector).length ? { selector: { matchLabels: g.selector } } : {}),
          mtls: { mode: g.mode },
          ...(g.portMode && g.selector && Object.keys(g.selector).length
            ? { portLevelMtls: { "8080": { mode: g.portMode } } }
            : {}),
        },
      }),
    );

const indexed = <T>(f: (i: number) => fc.Arbitrary<T>, max: number) =>
  fc
    .integer({ min: 0, max })
    .chain((n) =>
      n === 0 ? fc.constant([] as T[]) : fc.tuple(...Array.from({ length: n }, (_, i) => f(i))),
    );

const snapshot: fc.Arbitrary<ClusterSnapshot> = fc
  .record({
    namespaces: fc.tuple(...NAMESPACES.map(namespace)),
    pods: indexed(pod, 6),
    services: indexed(service, 3),
    authorizationPolicies: indexed(authz, 4),
    peerAuthentications: indexed(peerAuthn, 4),
  })
  .map((g) => ({ ...emptySnapshot(), ...g }));

t.test("translate holds its invariants on generated snapshots", async (t) => {
  fc.assert(
    fc.property(snapshot, (s) => {
      const before = JSON.stringify(s);
      const out = translate(s, { rootNamespace: "ambit-system" });
      if (JSON.stringify(s) !== before) throw new Error("input mutated");
      if (JSON.stringify(translate(s, { rootNamespace: "ambit-system" })) !== JSON.stringify(out))
        throw new Error("not deterministic");
      const keys = new Set(out.policies.map(policyKey));
      if (keys.size !== out.policies.length) throw new Error("duplicate policy key");
      for (const w of out.workloads) {
        for (const k of w.authorizationPolicies)
          if (!keys.has(k)) throw new Error(`${w.uid} lists missing policy ${k}`);
        const pod = s.pods.find((p) => p.metadata.name === w.name)!;
        const nsAmbient =
          s.namespaces.find((n) => n.metadata.name === w.namespace)?.metadata.labels?.[
            "ambit.dev/dataplane-mode"
          ] === "ambient";
        const optOut = pod.metadata.labels?.["ambit.dev/dataplane-mode"] === "none";
        if ((w.tunnel === "hbone") !== (nsAmbient && !optOut))
          throw new Error(`${w.uid} enrolment ${w.tunnel}`);
        for (const [svc, ports] of Object.entries(w.services)) {
          if (!out.services.some((x) => x.key === svc))
            throw new Error(`${w.uid} backs unknown service ${svc}`);
          for (const p of ports)
            if (p.targetPort !== 8080 && p.targetPort !== 9090) throw new Error(`bad target ${p.targetPort}`);
        }
      }
      if (new Set(out.workloads.map((w) => w.uid)).size !== out.workloads.length)
        throw new Error("duplicate workload uid");
      if (out.workloads.length !== s.pods.filter((p) => p.status?.podIP).length)
        throw new Error("a pod with an IP is missing");
      // AUDIT policies and non-numeric ports are errors, and those policies are absent.
      for (const ap of s.authorizationPolicies) {
        const bad = ap.spec.action === "AUDIT" || ap.spec.rules?.[0]?.to?.[0]?.operation.ports?.includes("x");
        if (bad === keys.has(policyKey({ namespace: ap.metadata.namespace!, name: ap.metadata.name }))) {
          throw new Error(`policy ${ap.metadata.name} presence wrong`);
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass("300 generated snapshots");
});

t.test(
  "a namespace PeerAuthentication with mode UNSET under a STRICT mesh keeps the workload STRICT",
  async (t) => {
    // istiod would list a converted policy it never emits (and drop the static
    // STRICT one); ambit keeps the workload STRICT instead.
    const pa = (name: string, ns: string, spec: PeerAuthentication["spec"]): PeerAuthentication => ({
      apiVersion: "ambit.dev/v1alpha1",
      kind: "PeerAuthentication",
      metadata: { name, namespace: ns },
      spec,
    });
    const s: ClusterSnapshot = {
      ...emptySnapshot(),
      namespaces: [
        {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "a", labels: { "ambit.dev/dataplane-mode": "ambient" } },
        },
      ],
      pods: [
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "p", namespace: "a", labels: { app: "x" } },
          spec: { nodeName: "node-1", containers: [{ name: "c" }] },
          status: { podIP: "10.244.0.1" },
        },
      ],
      peerAuthentications: [
        pa("mesh", "ambit-system", { mtls: { mode: "STRICT" } }),
        pa("ns", "a", { mtls: { mode: "UNSET" } }),
        pa("wl", "a", {
          selector: { matchLabels: { app: "x" } },
          portLevelMtls: { "8080": { mode: "PERMISSIVE" } },
        }),
      ],
    };
    const out = translate(s, { rootNamespace: "ambit-system" });
    t.same(out.workloads[0]?.authorizationPolicies, ["ambit-system/istio_converted_static_strict"]);
    t.same(out.policies.map(policyKey), ["ambit-system/istio_converted_static_strict"]);
  },
);

// statusFromTranslation: which status each object gets from a translation.
import t from "tap";
import { statusFromTranslation } from "../../controller/provider/kube/status-from-translation.js";
import { type ClusterSnapshot, emptySnapshot } from "../../controller/provider/objects.js";
import { ObjectError } from "../../core/errors/errors.js";

function snapshot(): ClusterSnapshot {
  const s = emptySnapshot();
  s.services.push({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "server", namespace: "demo" },
    spec: { ports: [{ port: 80 }] },
  });
  s.authorizationPolicies.push(
    {
      apiVersion: "ambit.dev/v1alpha1",
      kind: "AuthorizationPolicy",
      metadata: { name: "good", namespace: "demo", generation: 1 },
      spec: { action: "ALLOW" },
    },
    {
      apiVersion: "ambit.dev/v1alpha1",
      kind: "AuthorizationPolicy",
      metadata: { name: "bad", namespace: "demo", generation: 1 },
      spec: { action: "ALLOW" },
    },
  );
  s.gatewayClasses.push(
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "GatewayClass",
      metadata: { name: "ambit-waypoint" },
      spec: { controllerName: "ambit.dev/mesh-controller" },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "GatewayClass",
      metadata: { name: "other" },
      spec: { controllerName: "example.com/gw" },
    },
  );
  s.gateways.push(
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "Gateway",
      metadata: { name: "waypoint", namespace: "demo" },
      spec: {
        gatewayClassName: "ambit-waypoint",
        listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }],
      },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "Gateway",
      metadata: { name: "ingress", namespace: "demo" },
      spec: { gatewayClassName: "other", listeners: [] },
    },
  );
  s.httpRoutes.push(
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "split", namespace: "demo" },
      spec: { parentRefs: [{ group: "", kind: "Service", name: "server", port: 80 }, { name: "ingress" }] },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "orphan", namespace: "demo" },
      spec: { parentRefs: [{ group: "", kind: "Service", name: "missing" }] },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "ingress-only", namespace: "demo" },
      spec: { parentRefs: [{ name: "ingress" }] },
    },
  );
  return s;
}

t.test("accepted, refused with the translator's message, and only what ambit owns", async (t) => {
  const err = new ObjectError(
    "INVALID_FIELD",
    { kind: "AuthorizationPolicy", namespace: "demo", name: "bad" },
    "spec.rules[0].from[0].source.ipBlocks[0]",
    "not a CIDR",
  );
  const updates = statusFromTranslation(snapshot(), { errors: [err], warnings: [] });
  const by = new Map(updates.map((u) => [`${u.kind} ${u.namespace ?? ""}/${u.name}`, u.status]));
  t.same(
    [...by.keys()].sort(),
    [
      "AuthorizationPolicy demo/bad",
      "AuthorizationPolicy demo/good",
      "Gateway demo/waypoint",
      "GatewayClass /ambit-waypoint",
      "HTTPRoute demo/orphan",
      "HTTPRoute demo/split",
    ],
    "other controllers' classes, gateways and gateway-only routes are left alone",
  );
  t.same(by.get("AuthorizationPolicy demo/good"), {
    conditions: [{ type: "Accepted", status: "True", reason: "Accepted", message: "" }],
  });
  t.match(by.get("AuthorizationPolicy demo/bad"), {
    conditions: [
      { type: "Accepted", status: "False", reason: "Invalid", message: /ipBlocks\[0\]: not a CIDR/ },
    ],
  });
  t.same(by.get("HTTPRoute demo/split"), {
    parents: [
      {
        parentRef: { group: "", kind: "Service", name: "server", port: 80 },
        controllerName: "ambit.dev/mesh-controller",
        conditions: [
          { type: "Accepted", status: "True", reason: "Accepted", message: "" },
          { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "" },
        ],
      },
    ],
  });
  t.match(by.get("HTTPRoute demo/orphan"), {
    parents: [{ conditions: [{ type: "Accepted", status: "False", reason: "NoMatchingParent" }] }],
  });
});

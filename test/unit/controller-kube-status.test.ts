// planStatus: the pure half of the status writer.
import t from "tap";
import { planStatus } from "../../controller/provider/kube/status-writer.js";
import type { AuthorizationPolicy, Gateway } from "../../controller/provider/objects.js";

const now = new Date("2026-11-26T10:00:00.123Z");
const ap = (
  generation: number,
  status?: AuthorizationPolicy["status"] & { observedGeneration?: number },
): AuthorizationPolicy => ({
  apiVersion: "ambit.dev/v1alpha1",
  kind: "AuthorizationPolicy",
  metadata: { name: "p", namespace: "ns", generation },
  spec: {},
  ...(status ? { status } : {}),
});
const accepted = {
  conditions: [{ type: "Accepted", status: "True" as const, reason: "Accepted", message: "ok" }],
};

t.test("fills observedGeneration and lastTransitionTime; apply body and path", async (t) => {
  const plan = planStatus(
    { kind: "AuthorizationPolicy", namespace: "ns", name: "p", status: accepted },
    ap(3),
    now,
  );
  t.equal(plan.path, "/apis/ambit.dev/v1alpha1/namespaces/ns/authorizationpolicies/p/status");
  t.same(plan.body, {
    apiVersion: "ambit.dev/v1alpha1",
    kind: "AuthorizationPolicy",
    metadata: { name: "p", namespace: "ns" },
    status: {
      conditions: [
        {
          type: "Accepted",
          status: "True",
          reason: "Accepted",
          message: "ok",
          observedGeneration: 3,
          lastTransitionTime: "2026-11-26T10:00:00Z",
        },
      ],
      observedGeneration: 3,
    },
  });
  t.equal(plan.changed, true);
});

t.test(
  "unchanged when the current status says the same; other writers' conditions do not count",
  async (t) => {
    const cur = ap(3, {
      observedGeneration: 3,
      conditions: [
        {
          type: "Accepted",
          status: "True",
          reason: "Accepted",
          message: "ok",
          observedGeneration: 3,
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
        {
          type: "SomeoneElse",
          status: "False",
          reason: "X",
          message: "",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    });
    const plan = planStatus(
      { kind: "AuthorizationPolicy", namespace: "ns", name: "p", status: accepted },
      cur,
      now,
    );
    t.equal(plan.changed, false);
    t.equal(
      (plan.body.status.conditions as { lastTransitionTime: string }[])[0].lastTransitionTime,
      "2026-01-01T00:00:00Z",
      "transition time kept",
    );
  },
);

t.test("a new generation or a flipped status is a change; a flip moves the transition time", async (t) => {
  const cur = ap(4, {
    observedGeneration: 3,
    conditions: [
      {
        type: "Accepted",
        status: "True",
        reason: "Accepted",
        message: "ok",
        observedGeneration: 3,
        lastTransitionTime: "2026-01-01T00:00:00Z",
      },
    ],
  });
  const regen = planStatus(
    { kind: "AuthorizationPolicy", namespace: "ns", name: "p", status: accepted },
    cur,
    now,
  );
  t.equal(regen.changed, true);
  t.equal(
    (regen.body.status.conditions as { lastTransitionTime: string }[])[0].lastTransitionTime,
    "2026-01-01T00:00:00Z",
  );
  const flip = planStatus(
    {
      kind: "AuthorizationPolicy",
      namespace: "ns",
      name: "p",
      status: { conditions: [{ type: "Accepted", status: "False", reason: "Invalid", message: "bad" }] },
    },
    cur,
    now,
  );
  t.equal(flip.changed, true);
  t.equal(
    (flip.body.status.conditions as { lastTransitionTime: string }[])[0].lastTransitionTime,
    "2026-11-26T10:00:00Z",
  );
});

t.test(
  "Gateway API: nested listener conditions completed, no top-level observedGeneration; cluster-scoped paths",
  async (t) => {
    const gw: Gateway = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "Gateway",
      metadata: { name: "w", namespace: "ns", generation: 2 },
      spec: {
        gatewayClassName: "ambit-waypoint",
        listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }],
      },
    };
    const plan = planStatus(
      {
        kind: "Gateway",
        namespace: "ns",
        name: "w",
        status: {
          conditions: [{ type: "Programmed", status: "True" }],
          listeners: [
            {
              name: "mesh",
              attachedRoutes: 0,
              supportedKinds: [],
              conditions: [{ type: "Accepted", status: "True" }],
            },
          ],
        },
      },
      gw,
      now,
    );
    t.notOk("observedGeneration" in plan.body.status);
    const l = (
      plan.body.status.listeners as {
        conditions: { observedGeneration: number; reason: string; message: string }[];
      }[]
    )[0];
    t.same(l.conditions[0], {
      type: "Accepted",
      status: "True",
      reason: "Accepted",
      message: "",
      observedGeneration: 2,
      lastTransitionTime: "2026-11-26T10:00:00Z",
    });
    const gc = planStatus(
      { kind: "GatewayClass", name: "ambit-waypoint", status: { conditions: [] } },
      undefined,
      now,
    );
    t.equal(gc.path, "/apis/gateway.networking.k8s.io/v1/gatewayclasses/ambit-waypoint/status");
    t.same(gc.body.metadata, { name: "ambit-waypoint" });
    t.throws(() => planStatus({ kind: "Nope", name: "x", status: {} }, undefined, now));
  },
);

t.test("route parents: other controllers' entries are kept (the list is atomic)", async (t) => {
  const other = {
    parentRef: { name: "gw", namespace: "x" },
    controllerName: "example.com/gw",
    conditions: [
      {
        type: "Accepted",
        status: "True",
        reason: "A",
        message: "",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      },
    ],
  };
  const mineBefore = {
    parentRef: { group: "", kind: "Service", name: "svc" },
    controllerName: "ambit.dev/mesh-controller",
    conditions: [
      {
        type: "Accepted",
        status: "True",
        reason: "Accepted",
        message: "",
        observedGeneration: 1,
        lastTransitionTime: "2026-02-02T00:00:00Z",
      },
    ],
  };
  const route = {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute" as const,
    metadata: { name: "r", namespace: "ns", generation: 1 },
    spec: {},
    status: { parents: [other, mineBefore] },
  };
  const desired = {
    parents: [
      {
        parentRef: { group: "", kind: "Service", name: "svc" },
        controllerName: "ambit.dev/mesh-controller",
        conditions: [{ type: "Accepted", status: "True" as const, reason: "Accepted" }],
      },
    ],
  };
  const plan = planStatus({ kind: "HTTPRoute", namespace: "ns", name: "r", status: desired }, route, now);
  t.equal(plan.changed, false, "nothing new to say");
  const parents = plan.body.status.parents as {
    controllerName: string;
    conditions: { lastTransitionTime: string }[];
  }[];
  t.same(
    parents.map((p) => p.controllerName),
    ["example.com/gw", "ambit.dev/mesh-controller"],
  );
  t.equal(parents[1].conditions[0].lastTransitionTime, "2026-02-02T00:00:00Z");
});

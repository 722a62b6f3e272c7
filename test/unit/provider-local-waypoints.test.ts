// The local provider runs waypoints as a cluster's deployer would: a
// Gateway of class ambit-waypoint brings a ServiceAccount, a Deployment and a
// Service of its name; the YAML's own objects of those names win.
import t from "tap";
import { assembleSnapshot, emptyFacts } from "../../controller/provider/local/assemble.js";
import { LABEL_LOCAL_WAYPOINT, waypointObjects } from "../../controller/provider/local/waypoints.js";
import type { AnyObject, Gateway } from "../../controller/provider/objects.js";

const gateway = (name: string, cls = "ambit-waypoint"): Gateway => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "Gateway",
  metadata: { name, namespace: "shop" },
  spec: { gatewayClassName: cls, listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
});

const sourced = (objects: AnyObject[]) => [
  { file: "gw.yaml", objects: objects.map((object) => ({ object, file: "gw.yaml" })) },
];

t.test("a waypoint Gateway brings its Deployment, Service and ServiceAccount", async (t) => {
  const { snapshot, errors } = assembleSnapshot(
    sourced([gateway("waypoint"), gateway("other", "istio")]),
    emptyFacts(),
  );
  t.same(errors, []);
  t.same(
    snapshot.deployments.map((d) => `${d.metadata.namespace}/${d.metadata.name}`),
    ["shop/waypoint"],
    "only for class ambit-waypoint",
  );
  t.same(
    snapshot.serviceAccounts.map((d) => d.metadata.name),
    ["waypoint"],
  );
  const svc = snapshot.services.find((s) => s.metadata.name === "waypoint");
  t.match(svc, {
    metadata: { labels: { "ambit.dev/use-waypoint": "none" } },
    spec: { ports: [{ port: 15008 }] },
  });
  t.ok(svc?.spec.clusterIP, "the Service gets a VIP like any other");
  const pods = snapshot.pods.filter((p) => p.metadata.labels?.[LABEL_LOCAL_WAYPOINT] === "shop.waypoint");
  t.equal(pods.length, 1, "one waypoint pod, marked for ambit up");
  t.match(pods[0], {
    metadata: {
      labels: { "gateway.networking.k8s.io/gateway-name": "waypoint", "ambit.dev/dataplane-mode": "none" },
    },
    spec: { serviceAccountName: "waypoint" },
  });
  t.equal(
    snapshot.sources?.["Deployment shop/waypoint"],
    "gw.yaml",
    "errors about them name the Gateway's file",
  );
});

t.test("objects the YAML defines win", async (t) => {
  const own = waypointObjects(gateway("waypoint")).service;
  own.spec.ports = [{ name: "mine", port: 15008 }];
  const { snapshot, errors } = assembleSnapshot(sourced([own, gateway("waypoint")]), emptyFacts());
  t.same(errors, [], "no duplicate error for the synthesized copy");
  t.same(
    snapshot.services.filter((s) => s.metadata.name === "waypoint").map((s) => s.spec.ports?.[0]?.name),
    ["mine"],
  );
});

// planWaypoint (pure): the waypoint Deployment the kube deployer applies
// carries the OTLP endpoint the controller was given (manifests/observability
// feeds it from the ambit-waypoint-telemetry ConfigMap), and none without one.
import t from "tap";
import { parseControllerConfig } from "../../controller/config.js";
import { planWaypoint, type WaypointParams } from "../../controller/provider/kube/waypoint-deployer.js";
import type { Gateway } from "../../controller/provider/objects-gateway.js";

const gateway: Gateway = {
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "Gateway",
  metadata: { name: "waypoint", namespace: "shop", uid: "u-1" },
  spec: { gatewayClassName: "ambit-waypoint", listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
};

const params: WaypointParams = {
  image: "ambit:test",
  xdsAddress: "ambit-controller.ambit-system.svc:15012",
  trustDomain: "cluster.local",
  clusterDomain: "cluster.local",
  rootPem: "PEM",
};

type Env = { name: string; value?: string }[];
function waypointEnv(p: WaypointParams): Env {
  const d = planWaypoint(gateway, p).find((o) => o.kind === "Deployment") as unknown as {
    spec: { template: { spec: { containers: { name: string; env: Env }[] } } };
  };
  return d.spec.template.spec.containers.find((c) => c.name === "waypoint")!.env;
}

t.test("the OTLP endpoint reaches the waypoint's environment", async (t) => {
  const env = waypointEnv({ ...params, otlpEndpoint: "http://jaeger-collector.observability.svc:4318" });
  t.same(
    env.filter((e) => e.name === "AMBIT_OTLP_ENDPOINT"),
    [{ name: "AMBIT_OTLP_ENDPOINT", value: "http://jaeger-collector.observability.svc:4318" }],
  );
  t.notOk(
    waypointEnv(params).some((e) => e.name === "AMBIT_OTLP_ENDPOINT"),
    "no endpoint configured: no variable (the waypoint exports no spans)",
  );
});

t.test(
  "controller config: --waypoint-otlp-endpoint / AMBIT_WAYPOINT_OTLP_ENDPOINT in kube mode",
  async (t) => {
    const env = { POD_NAMESPACE: "ambit-system", AMBIT_WAYPOINT_OTLP_ENDPOINT: "http://otel:4318" };
    const c = parseControllerConfig(["--provider=kube"], env);
    t.equal(c !== "help" && c.kube?.waypointOtlpEndpoint, "http://otel:4318");
    const f = parseControllerConfig(
      ["--provider=kube", "--waypoint-otlp-endpoint", "https://tempo:4318"],
      env,
    );
    t.equal(f !== "help" && f.kube?.waypointOtlpEndpoint, "https://tempo:4318", "the flag wins");
    const none = parseControllerConfig(["--provider=kube"], { POD_NAMESPACE: "ambit-system" });
    t.equal(none !== "help" && none.kube?.waypointOtlpEndpoint, undefined);
    t.throws(
      () => parseControllerConfig(["--provider=kube", "--waypoint-otlp-endpoint", "jaeger:4318"], env),
      /not an http\(s\) URL/,
    );
  },
);

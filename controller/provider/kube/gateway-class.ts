// The GatewayClass ambit-waypoint is created by the controller (its leader),
// not shipped in the kustomization: a GatewayClass in the same
// `kubectl apply -k` as the Gateway API CRDs fails on a fresh cluster
// ("no matches for kind GatewayClass": kubectl maps every object before the
// CRDs exist). Istio's istiod creates its istio-waypoint class the same way.
import { WAYPOINT_CONTROLLER_NAME, WAYPOINT_GATEWAY_CLASS } from "../objects.js";
import { isConflict, isNotFound, type KubeClient } from "./client.js";
import { GATEWAY_GROUP } from "./resources.js";

/** controllerName of the GatewayClass whose Gateways ambit turns into waypoints (one constant, in objects.ts). */
export { WAYPOINT_CONTROLLER_NAME };

export function waypointGatewayClass() {
  return {
    apiVersion: `${GATEWAY_GROUP}/v1`,
    kind: "GatewayClass",
    metadata: { name: WAYPOINT_GATEWAY_CLASS, labels: { "app.kubernetes.io/part-of": "ambit" } },
    spec: {
      controllerName: WAYPOINT_CONTROLLER_NAME,
      description: "ambit waypoint proxies (per-namespace L7)",
    },
  };
}

/**
 * Creates (server-side apply, not forced) the waypoint GatewayClass.
 * "absent-crd": the Gateway API is not installed (retry later); "foreign":
 * someone else manages the class's fields (left alone).
 */
export async function ensureWaypointGatewayClass(
  client: KubeClient,
  fieldManager = "ambit-controller",
): Promise<"applied" | "absent-crd" | "foreign"> {
  try {
    await client.request({
      method: "PATCH",
      path: `/apis/${GATEWAY_GROUP}/v1/gatewayclasses/${WAYPOINT_GATEWAY_CLASS}`,
      query: { fieldManager },
      contentType: "application/apply-patch+yaml",
      body: waypointGatewayClass(),
    });
    return "applied";
  } catch (e) {
    if (isNotFound(e)) return "absent-crd";
    if (isConflict(e)) return "foreign";
    throw e;
  }
}

// The local provider's stand-in for the waypoint deployer: for every Gateway
// of class ambit-waypoint it adds what a cluster's controller would create
// (as Istio does for its waypoints): a ServiceAccount, a one-replica
// Deployment and a Service, all named after the Gateway. The pods carry
// LABEL_LOCAL_WAYPOINT = "NS.NAME" of their Gateway, so that `ambit up` runs
// `ambit waypoint` for them; the Service gives the Gateway its address
// (`<name>.<ns>.svc.<domain>`, HBONE on 15008). Objects the YAML defines with
// those names win.
import {
  type Deployment,
  type Gateway,
  LABEL_DATAPLANE_MODE,
  LABEL_USE_WAYPOINT,
  type Service,
  type ServiceAccount,
  WAYPOINT_GATEWAY_CLASS,
} from "../objects.js";
import { stableUid } from "./parse.js";

export const LABEL_GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name";
/** On the synthesized pods: `<namespace>.<gateway name>` of the Gateway they serve. */
export const LABEL_LOCAL_WAYPOINT = "ambit.dev/local-waypoint";
export const WAYPOINT_HBONE_PORT = 15008;

export interface WaypointObjects {
  serviceAccount: ServiceAccount;
  deployment: Deployment;
  service: Service;
}

export function isWaypointGateway(g: Gateway): boolean {
  return g.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS;
}

/** The objects that run one waypoint Gateway (pure). */
export function waypointObjects(g: Gateway): WaypointObjects {
  const namespace = g.metadata.namespace ?? "default";
  const name = g.metadata.name;
  const meta = (kind: string) => ({
    name,
    namespace,
    uid: stableUid(`${kind} ${namespace}/${name} (waypoint)`),
    labels: { [LABEL_GATEWAY_NAME]: name, ...(g.spec.infrastructure?.labels ?? {}) },
    ...(g.spec.infrastructure?.annotations ? { annotations: { ...g.spec.infrastructure.annotations } } : {}),
  });
  const podLabels = {
    ...(g.spec.infrastructure?.labels ?? {}),
    [LABEL_GATEWAY_NAME]: name,
    [LABEL_LOCAL_WAYPOINT]: `${namespace}.${name}`,
    // The waypoint speaks HBONE itself: its own traffic is never captured.
    [LABEL_DATAPLANE_MODE]: "none",
  };
  return {
    serviceAccount: { apiVersion: "v1", kind: "ServiceAccount", metadata: meta("ServiceAccount") },
    deployment: {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta("Deployment"),
      spec: {
        replicas: 1,
        selector: { matchLabels: { [LABEL_GATEWAY_NAME]: name } },
        template: {
          metadata: { labels: podLabels },
          spec: {
            serviceAccountName: name,
            terminationGracePeriodSeconds: 5,
            containers: [
              {
                name: "waypoint",
                image: "ambit",
                // `ambit up` fills in the controller's address and the credentials.
                command: ["ambit", "waypoint", "--gateway", `${namespace}/${name}`],
                ports: [{ name: "hbone", containerPort: WAYPOINT_HBONE_PORT }],
              },
            ],
          },
        },
      },
    },
    service: {
      apiVersion: "v1",
      kind: "Service",
      // A waypoint's own Service never goes through a waypoint.
      metadata: { ...meta("Service"), labels: { ...meta("Service").labels, [LABEL_USE_WAYPOINT]: "none" } },
      spec: {
        selector: { [LABEL_GATEWAY_NAME]: name },
        ports: [
          { name: "mesh", port: WAYPOINT_HBONE_PORT, targetPort: WAYPOINT_HBONE_PORT, protocol: "TCP" },
        ],
      },
    },
  };
}

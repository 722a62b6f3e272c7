// What the local supervisor starts for one Pod of the YAML, decided before
// anything is created: the spec to run (a waypoint's container in place of
// the Gateway's placeholder, the capture gate first when ztunnel runs), the
// downward-API values its containers may reference, or why it cannot run (a
// node outside the mesh, a container that cannot be started). Pure but for
// the check that this build has the waypoint command, done by the caller.
import { LABEL_LOCAL_WAYPOINT } from "../controller/provider/local/index.js";
import type { Pod, PodSpec } from "../controller/provider/objects.js";
import { containerArgv } from "./pod-runner.js";
import { type ComponentContext, captureGateContainer, waypointContainer } from "./supervisor-components.js";

export type PodLaunch =
  | { refuse: string }
  | {
      spec: PodSpec;
      /** NS/NAME of the Gateway when the pod is a waypoint. */
      waypointGateway?: string;
      fieldRefs: Record<string, string>;
    };

export interface PodLaunchContext {
  components: ComponentContext;
  nodes: readonly string[];
  withZtunnel: boolean;
  hasWaypointCommand: boolean;
}

export function planPodLaunch(key: string, pod: Pod, node: string, ctx: PodLaunchContext): PodLaunch {
  if (!ctx.nodes.includes(node))
    return { refuse: `spec.nodeName: node '${node}' is not part of this mesh (nodes: ${ctx.nodes.join(", ")})` };
  try {
    // Checked before the pod gets a namespace, so a bad pod leaves nothing behind.
    for (const [i, c] of pod.spec.containers.entries()) containerArgv(key, c, `spec.containers[${i}]`);
  } catch (e) {
    return { refuse: (e as Error).message };
  }
  const serviceAccount = pod.spec.serviceAccountName ?? pod.spec.serviceAccount ?? "default";
  let spec = pod.spec;
  let waypointGateway: string | undefined;
  const waypoint = pod.metadata.labels?.[LABEL_LOCAL_WAYPOINT];
  if (waypoint) {
    if (!ctx.hasWaypointCommand) return { refuse: "this build has no 'ambit waypoint' command: the waypoint cannot run" };
    spec = { ...spec, containers: [waypointContainer(ctx.components, waypoint, node, serviceAccount)] };
    const dot = waypoint.indexOf(".");
    waypointGateway = `${waypoint.slice(0, dot)}/${waypoint.slice(dot + 1)}`;
  }
  // Enrolled or not, a pod starts once the controller knows it (and ztunnel captures it when enrolled).
  if (ctx.withZtunnel && !spec.hostNetwork)
    spec = { ...spec, initContainers: [captureGateContainer(ctx.components, key), ...(spec.initContainers ?? [])] };
  return {
    spec,
    ...(waypointGateway ? { waypointGateway } : {}),
    fieldRefs: {
      "spec.serviceAccountName": serviceAccount,
      "metadata.uid": pod.metadata.uid ?? "",
      ...Object.fromEntries(
        Object.entries(pod.metadata.labels ?? {}).map(([k, v]) => [`metadata.labels['${k}']`, v]),
      ),
    },
  };
}

// Applies the observability plan of a local mesh (observability.ts) from the
// supervisor's process: writes Prometheus' and Jaeger's configuration, keeps
// Prometheus' file_sd target files in step with the ztunnels and waypoints,
// and offers Prometheus' and Jaeger's UIs on the host's loopback (forwards
// into the control plane's namespace, where both bind to loopback only). The
// two servers themselves run as the mesh's pods (the supervisor starts them
// with this plan's containers).
//
//   const obs = await MeshObservability.start(plan, layout, 2);
//   obs.syncWaypoints([{ key, ip, node, gateway }]);   // after each reconcile
//   obs.status()    // URLs for `ambit status`
//   await obs.close();
import type { MeshLayout } from "./network.js";
import {
  OBSERVABILITY_PORTS,
  type ObservabilityPlan,
  type ObservabilityStatus,
  targetFileJson,
  waypointTarget,
  ztunnelTarget,
} from "./observability.js";
import { NetnsForward } from "./observability-forward.js";
import { writeFileAtomicSync } from "../core/files/write-atomic.js";

export interface WaypointPod {
  key: string;
  ip: string;
  node: string;
  /** NS/NAME of its Gateway. */
  gateway: string;
}

export class MeshObservability {
  private readonly hostForwards: NetnsForward[] = [];
  private waypointsJson = "";
  private closed = false;

  private constructor(
    readonly plan: ObservabilityPlan,
    private readonly scrapeIntervalSeconds: number,
  ) {}

  /** Writes the configuration and target files and opens the host forwards. */
  static async start(
    plan: ObservabilityPlan,
    layout: MeshLayout,
    scrapeIntervalSeconds: number,
  ): Promise<MeshObservability> {
    const obs = new MeshObservability(plan, scrapeIntervalSeconds);
    try {
      writeFileAtomicSync(plan.prometheus.configFile, plan.prometheus.config);
      writeFileAtomicSync(plan.jaeger.configFile, plan.jaeger.config);
      writeFileAtomicSync(plan.targetFiles.ztunnel, targetFileJson(layout.nodes.map(ztunnelTarget)));
      obs.syncWaypoints([]);
      const cp = layout.controlPlane.netnsPath;
      for (const port of [OBSERVABILITY_PORTS.prometheus, OBSERVABILITY_PORTS.jaegerQuery]) {
        obs.hostForwards.push(
          await NetnsForward.start({
            listen: { host: "127.0.0.1", port },
            target: { netns: cp, host: "127.0.0.1", port },
            anyPortIfTaken: true,
          }),
        );
      }
    } catch (e) {
      await obs.close();
      throw e;
    }
    return obs;
  }

  /** Rewrites the waypoints' target file when the set of waypoint pods changed (Prometheus re-reads it). */
  syncWaypoints(pods: WaypointPod[]): void {
    if (this.closed) return;
    const json = targetFileJson(pods.map(waypointTarget));
    if (json === this.waypointsJson) return;
    this.waypointsJson = json;
    writeFileAtomicSync(this.plan.targetFiles.waypoint, json);
  }

  status(): ObservabilityStatus {
    const [prom, jaeger] = this.hostForwards;
    return {
      prometheus: {
        url: prom ? `http://127.0.0.1:${prom.port}/` : this.plan.prometheus.url,
        meshUrl: this.plan.prometheus.url,
        scrapeIntervalSeconds: this.scrapeIntervalSeconds,
      },
      jaeger: {
        url: jaeger ? `http://127.0.0.1:${jaeger.port}/` : this.plan.jaeger.url,
        meshUrl: this.plan.jaeger.url,
        otlpEndpoint: this.plan.otlpEndpoint,
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.hostForwards.map((f) => f.close()));
  }
}

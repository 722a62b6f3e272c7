// Per-endpoint state the load balancer and outlier detection share.
import type { WaypointEndpoint } from "../../core/model/waypoint.js";

export class EndpointState {
  readonly key: string;
  /** Requests in flight to this endpoint (LEAST_REQUEST). */
  active = 0;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  /** Times ejected so far: the next ejection lasts base × (ejections + 1). */
  ejections = 0;
  /** 0 when not ejected, else the ms timestamp it comes back. */
  ejectedUntil = 0;
  /** The endpoint's workload, namespace and identity (metric labels); set from config. */
  workload?: string;
  namespace?: string;
  identity?: string;
  constructor(
    readonly ip: string,
    readonly port: number,
    public weight: number,
  ) {
    this.key = ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
  }
  static from(e: WaypointEndpoint): EndpointState {
    const s = new EndpointState(e.ip, e.port, e.weight && e.weight > 0 ? e.weight : 1);
    if (e.workload) s.workload = e.workload;
    if (e.namespace) s.namespace = e.namespace;
    if (e.identity) s.identity = e.identity;
    return s;
  }
}

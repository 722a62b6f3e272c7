// Glue between the xDS client (core/xds/client.ts) and the waypoint: a
// handler for the ambit.v1.WaypointService type. Every resource of an update
// is decoded and compiled before any is applied; a bad one throws, which the
// xDS client turns into a NACK carrying the message, and the last good
// configuration stays.
import type { Any } from "@bufbuild/protobuf/wkt";
import { decodeServiceAny, WAYPOINT_SERVICE_TYPE_URL } from "./config-codec.js";
import type { Waypoint } from "./waypoint.js";

export interface ResourceUpdate {
  added: { name: string; version?: string; resource: Any }[];
  removed: string[];
}

export { WAYPOINT_SERVICE_TYPE_URL };

/**
 * `gateway` (`<ns>/<name>`): services that name another waypoint are treated
 * as absent (the push server publishes every waypoint's services to all).
 */
export function waypointServiceHandler(wp: Waypoint, gateway?: string): (u: ResourceUpdate) => void {
  return (u) => {
    const decoded = u.added.map((r) => decodeServiceAny(r.resource, r.name));
    const mine = decoded.filter((s) => !gateway || !s.gateway || s.gateway === gateway);
    const others = decoded.filter((s) => !mine.includes(s)).map((s) => s.key);
    wp.applyServices(mine, [...u.removed, ...others]);
  };
}

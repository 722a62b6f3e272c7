// What the waypoint config codec's two directions share: the resource type,
// the error that names a field, and the enum mappings between model and proto.
import { AmbitError } from "../core/errors/errors.js";
import { AuthzPolicy_Action, LoadBalancer_Type, MatchType, Protocol } from "../core/gen/waypoint_pb.js";
import type { LoadBalancer, WaypointProtocol } from "../core/model/waypoint.js";

export const WAYPOINT_SERVICE_TYPE_URL = "type.googleapis.com/ambit.v1.WaypointService";

export class ConfigCodecError extends AmbitError {
  constructor(
    readonly resource: string,
    readonly field: string,
    reason: string,
  ) {
    super("INVALID_FIELD", `WaypointService ${resource || "<unnamed>"}: field ${field}: ${reason}`, {
      resource,
      field,
    });
    this.name = "ConfigCodecError";
  }
}

// ---------- enums ----------

export const protoOf: Record<WaypointProtocol, Protocol> = {
  http: Protocol.HTTP,
  http2: Protocol.HTTP2,
  grpc: Protocol.GRPC,
  tcp: Protocol.TCP,
};
export const protocolOf: Record<number, WaypointProtocol> = {
  [Protocol.HTTP]: "http",
  [Protocol.HTTP2]: "http2",
  [Protocol.GRPC]: "grpc",
  [Protocol.TCP]: "tcp",
};
export const matchOf = {
  Exact: MatchType.EXACT,
  PathPrefix: MatchType.PATH_PREFIX,
  RegularExpression: MatchType.REGULAR_EXPRESSION,
} as const;
export const matchName: Record<number, "Exact" | "PathPrefix" | "RegularExpression"> = {
  [MatchType.EXACT]: "Exact",
  [MatchType.PATH_PREFIX]: "PathPrefix",
  [MatchType.REGULAR_EXPRESSION]: "RegularExpression",
};
export const lbOf = {
  ROUND_ROBIN: LoadBalancer_Type.ROUND_ROBIN,
  LEAST_REQUEST: LoadBalancer_Type.LEAST_REQUEST,
  RANDOM: LoadBalancer_Type.RANDOM,
  CONSISTENT_HASH: LoadBalancer_Type.CONSISTENT_HASH,
} as const;
export const lbName: Record<number, LoadBalancer["type"]> = {
  [LoadBalancer_Type.ROUND_ROBIN]: "ROUND_ROBIN",
  [LoadBalancer_Type.LEAST_REQUEST]: "LEAST_REQUEST",
  [LoadBalancer_Type.RANDOM]: "RANDOM",
  [LoadBalancer_Type.CONSISTENT_HASH]: "CONSISTENT_HASH",
};
export const actionOf = {
  ALLOW: AuthzPolicy_Action.ALLOW,
  DENY: AuthzPolicy_Action.DENY,
  AUDIT: AuthzPolicy_Action.AUDIT,
} as const;
export const actionName: Record<number, "ALLOW" | "DENY" | "AUDIT"> = { 0: "ALLOW", 1: "DENY", 2: "AUDIT" };


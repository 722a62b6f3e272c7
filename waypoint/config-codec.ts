// Model ↔ wire for the waypoint's configuration: ambit.v1.WaypointService
// (core/proto/ambit/waypoint.proto), one xDS resource per service. Decoding
// validates everything the data path relies on and names the field that is
// wrong (the waypoint NACKs with that message and keeps its last good state).
// The implementation is split by direction: config-codec-common.ts (type URL,
// error, enum mappings), config-encode.ts and config-decode.ts.
export { ConfigCodecError, WAYPOINT_SERVICE_TYPE_URL } from "./config-codec-common.js";
export * from "./config-decode.js";
export * from "./config-encode.js";

// The local provider's public surface.

export {
  type AssembleResult,
  allocateVips,
  applyPodFacts,
  assembleSnapshot,
  emptyFacts,
} from "./assemble.js";
export { type Expansion, expandWorkload, nameSuffix, templateHash } from "./expand.js";
export { LocalProvider, type LocalProviderOptions, listYamlFiles, readFileState } from "./local-provider.js";
export { type FileParse, parseFile, type SourcedObject, stableUid } from "./parse.js";
export {
  isWaypointGateway,
  LABEL_GATEWAY_NAME,
  LABEL_LOCAL_WAYPOINT,
  WAYPOINT_HBONE_PORT,
  type WaypointObjects,
  waypointObjects,
} from "./waypoints.js";

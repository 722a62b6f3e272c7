// The Kubernetes side of the controller: informers → ClusterSnapshot, leader
// election, status writes, and CA caller authentication by TokenReview.

export { type CaRootSecretOptions, loadOrCreateCaFromSecret } from "./ca-root-secret.js";
export {
  isConflict,
  isNotFound,
  KubeApiError,
  KubeClient,
  type KubeConfigSource,
  type KubeRequest,
  loadKubeConfig,
} from "./client.js";
export {
  ensureWaypointGatewayClass,
  WAYPOINT_CONTROLLER_NAME,
  waypointGatewayClass,
} from "./gateway-class.js";
export { KubeProvider, type KubeProviderOptions, normalizeObject } from "./kube-provider.js";
export { KubeRuntime, type KubeRuntimeOptions } from "./kube-runtime.js";
export { type LeaderElectionOptions, LeaderElector } from "./leader-election.js";
export {
  collectionPath,
  objectPath,
  resourceByKind,
  WATCHED_RESOURCES,
  type WatchedResource,
} from "./resources.js";
export { statusFromTranslation } from "./status-from-translation.js";
export {
  planStatus,
  type StatusPlan,
  type StatusResult,
  type StatusUpdate,
  StatusWriter,
  type StatusWriterOptions,
} from "./status-writer.js";
export {
  callerFromReview,
  TokenReviewAuthenticator,
  type TokenReviewAuthenticatorOptions,
} from "./tokenreview-authn.js";

// The Kubernetes side of the controller: informers → ClusterSnapshot, leader
// election, status writes, and CA caller authentication by TokenReview.
export { KubeClient, KubeApiError, loadKubeConfig, isConflict, isNotFound, type KubeConfigSource, type KubeRequest } from "./client.js";
export { KubeProvider, normalizeObject, type KubeProviderOptions } from "./kube-provider.js";
export { LeaderElector, type LeaderElectionOptions } from "./leader-election.js";
export { StatusWriter, planStatus, type StatusPlan, type StatusResult, type StatusUpdate, type StatusWriterOptions } from "./status-writer.js";
export { TokenReviewAuthenticator, callerFromReview, type TokenReviewAuthenticatorOptions } from "./tokenreview-authn.js";
export { WATCHED_RESOURCES, collectionPath, objectPath, resourceByKind, type WatchedResource } from "./resources.js";
export { loadOrCreateCaFromSecret, type CaRootSecretOptions } from "./ca-root-secret.js";
export { ensureWaypointGatewayClass, waypointGatewayClass, WAYPOINT_CONTROLLER_NAME } from "./gateway-class.js";

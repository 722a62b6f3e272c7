// ambit's own model of the mesh. Kubernetes objects (controller/translate) and
// wire formats (core/xds/codec-*) are converted to and from these types once,
// at the edge; everything in between works on these.

export type AppProtocol = "tcp" | "http" | "http2" | "grpc";

/** Where a waypoint (or other HBONE gateway) is reached. */
export interface GatewayAddress {
  /** IP of the waypoint (a pod IP or Service VIP), when known. */
  address?: string;
  /** or a Service hostname in a namespace. */
  hostname?: { namespace: string; hostname: string };
  /** HBONE port, 15008. */
  hboneMtlsPort: number;
}

export interface ServicePort {
  name?: string;
  port: number;
  /** Numeric target port; 0 when the Service names a port that each workload resolves itself. */
  targetPort: number;
  appProtocol: AppProtocol;
}

export interface MeshService {
  /** `<ns>/<hostname>`, istiod's Service key. */
  key: string;
  name: string;
  namespace: string;
  /** `<name>.<ns>.svc.<clusterDomain>` */
  hostname: string;
  /** Cluster IPs (VIPs); may be empty for headless Services. */
  vips: string[];
  ports: ServicePort[];
  waypoint?: GatewayAddress;
  /** Network of the VIPs (xDS NetworkAddress.network); "" or absent for the default network. */
  network?: string;
}

/** A port a workload serves for one of its Services. */
export interface WorkloadServicePort {
  servicePort: number;
  targetPort: number;
}

export interface MeshWorkload {
  /** istiod's uid: `<cluster>//v1/Pod/<ns>/<name>` */
  uid: string;
  name: string;
  namespace: string;
  ips: string[];
  node: string;
  serviceAccount: string;
  trustDomain: string;
  /** "hbone": the pod is enrolled and its traffic is tunnelled; "none": plain. */
  tunnel: "hbone" | "none";
  waypoint?: GatewayAddress;
  /** Service key → ports this workload backs for it (target ports resolved, named ports too). */
  services: Record<string, WorkloadServicePort[]>;
  healthy: boolean;
  /** app.kubernetes.io/name, app label, or the owner's name. */
  canonicalName: string;
  canonicalRevision: string;
  /** The owner's name (Deployment, StatefulSet...), or the pod name. */
  workloadName: string;
  workloadType: "deployment" | "cronjob" | "pod" | "job";
  clusterId: string;
  network: string;
  /** Names `<ns>/<policy>` of the workload-scoped Authorization policies that select it. */
  authorizationPolicies: string[];
  /**
   * PeerAuthentication mode for plaintext arriving at this workload (15006).
   * Absent means permissive. Istio also expresses STRICT as a converted DENY
   * policy (notPrincipals presence), which L4 authorization enforces as well.
   */
  mtlsMode?: "strict" | "permissive";
}

export type StringMatch =
  | { exact: string }
  | { prefix: string }
  | { suffix: string }
  | { presence: true };

export interface CidrMatch {
  address: string;
  length: number;
}

/** All set fields must match (AND); each list matches when any entry matches (OR). */
export interface AuthzMatch {
  namespaces?: StringMatch[];
  notNamespaces?: StringMatch[];
  principals?: StringMatch[];
  notPrincipals?: StringMatch[];
  serviceAccounts?: { namespace: string; serviceAccount: string }[];
  notServiceAccounts?: { namespace: string; serviceAccount: string }[];
  sourceIps?: CidrMatch[];
  notSourceIps?: CidrMatch[];
  destinationIps?: CidrMatch[];
  notDestinationIps?: CidrMatch[];
  destinationPorts?: number[];
  notDestinationPorts?: number[];
}

/** Any match of a clause matches it (OR). */
export interface AuthzClause {
  matches: AuthzMatch[];
}

/** Every clause must match (AND). A rule with no clauses matches everything. */
export interface AuthzRule {
  clauses: AuthzClause[];
}

/** An L4 authorization policy, the shape of istio.security.Authorization. */
export interface AuthzPolicy {
  name: string;
  namespace: string;
  /** "global": the root namespace; "namespace": every workload of `namespace`; "workload": those listing it. */
  scope: "global" | "namespace" | "workload";
  action: "allow" | "deny";
  rules: AuthzRule[];
  dryRun: boolean;
}

/** `<ns>/<name>`, the key of an AuthzPolicy in xDS and in MeshWorkload.authorizationPolicies. */
export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

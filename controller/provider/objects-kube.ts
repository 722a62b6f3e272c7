// Kubernetes core/v1, apps/v1 and batch/v1 shapes ambit reads (see objects.ts).

// ---------- common ----------

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
  generateName?: string;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

/** Any object with a kind and metadata. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

// ---------- core/v1 ----------

export interface Namespace extends KubeObject {
  kind: "Namespace";
}

export interface ServiceAccount extends KubeObject {
  kind: "ServiceAccount";
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
  };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: "TCP" | "UDP" | "SCTP";
  hostPort?: number;
}

export interface Probe {
  exec?: { command: string[] };
  httpGet?: {
    path?: string;
    port: number | string;
    host?: string;
    scheme?: "HTTP" | "HTTPS";
    httpHeaders?: { name: string; value: string }[];
  };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  workingDir?: string;
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
}

export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  serviceAccountName?: string;
  /** Deprecated alias of serviceAccountName, still honoured by Kubernetes. */
  serviceAccount?: string;
  hostNetwork?: boolean;
  restartPolicy?: "Always" | "OnFailure" | "Never";
  hostname?: string;
  subdomain?: string;
  initContainers?: Container[];
  containers: Container[];
  terminationGracePeriodSeconds?: number;
}

export interface PodStatus {
  phase?: "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  conditions?: Condition[];
}

export interface Pod extends KubeObject {
  kind: "Pod";
  spec: PodSpec;
  status?: PodStatus;
}

export interface PodTemplateSpec {
  metadata?: Partial<ObjectMeta>;
  spec: PodSpec;
}

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: "TCP" | "UDP" | "SCTP";
  appProtocol?: string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  kind: "Service";
  spec: {
    type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePortSpec[];
    selector?: Record<string, string>;
    externalName?: string;
    publishNotReadyAddresses?: boolean;
  };
}

export interface EndpointSlice extends KubeObject {
  kind: "EndpointSlice";
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    targetRef?: { kind: string; namespace?: string; name: string; uid?: string };
  }[];
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
}

export interface Node extends KubeObject {
  kind: "Node";
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: {
    addresses?: { type: "InternalIP" | "ExternalIP" | "Hostname" | string; address: string }[];
    conditions?: Condition[];
  };
}

// ---------- apps/v1, batch/v1 ----------

export interface Deployment extends KubeObject {
  kind: "Deployment";
  spec: { replicas?: number; selector: LabelSelector; template: PodTemplateSpec };
}

export interface ReplicaSet extends KubeObject {
  kind: "ReplicaSet";
  spec: { replicas?: number; selector: LabelSelector; template: PodTemplateSpec };
}

export interface StatefulSet extends KubeObject {
  kind: "StatefulSet";
  spec: { replicas?: number; selector: LabelSelector; serviceName?: string; template: PodTemplateSpec };
}

export interface DaemonSet extends KubeObject {
  kind: "DaemonSet";
  spec: { selector: LabelSelector; template: PodTemplateSpec };
}

export interface Job extends KubeObject {
  kind: "Job";
  spec: { parallelism?: number; completions?: number; backoffLimit?: number; template: PodTemplateSpec };
}

export type WorkloadObject = Deployment | ReplicaSet | StatefulSet | DaemonSet | Job;

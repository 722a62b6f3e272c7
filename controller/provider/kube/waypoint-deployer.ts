// The waypoint deployer (leader only): every Gateway of class ambit-waypoint
// gets a ServiceAccount, a Deployment running `ambit waypoint`, a Service
// (HBONE on 15008) and a ConfigMap with the mesh root (the waypoint talks
// TLS to the controller; a ConfigMap cannot be mounted across namespaces).
// All are owned by the Gateway (ownerReferences, controller: true), so the
// garbage collector deletes them with it. Applied with server-side apply
// (field manager ambit-waypoint-deployer, forced: the deployer owns them).
// The Gateway's status gets Programmed and its address (the Service's
// ClusterIP and hostname), written with its own field manager next to the
// translator's Accepted.
//
// The objects are the local provider's (provider/local/waypoints.ts:
// waypointObjects, what `ambit up` runs), completed for a cluster here.
// planWaypoint and planPrune are pure; WaypointDeployer does the I/O.
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import {
  isWaypointGateway,
  LABEL_LOCAL_WAYPOINT,
  WAYPOINT_HBONE_PORT,
  waypointObjects,
} from "../local/waypoints.js";
import type { ClusterSnapshot, Gateway, KubeObject } from "../objects.js";
import { isNotFound, type KubeClient } from "./client.js";
import { GATEWAY_GROUP } from "./resources.js";
import { StatusWriter } from "./status-writer.js";

export const DEPLOYER_FIELD_MANAGER = "ambit-waypoint-deployer";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name";
/** The mesh root's file in the waypoint pod. */
const ROOT_DIR = "/etc/ambit/root";
const TOKEN_DIR = "/var/run/secrets/tokens";

export interface WaypointParams {
  image: string;
  /** The controller's xDS + CA address, host:port (TLS). */
  xdsAddress: string;
  trustDomain: string;
  clusterDomain: string;
  /** PEM of the mesh root, for the waypoint's ConfigMap. */
  rootPem: string;
  /** OTLP/HTTP collector for the waypoints' request spans (AMBIT_OTLP_ENDPOINT); absent: no spans. */
  otlpEndpoint?: string;
}

/** A manifest as sent to the API server. */
export type Manifest = KubeObject & Record<string, unknown>;

export function rootConfigMapName(gateway: string): string {
  return `${gateway}-ambit-root`;
}

/** The objects one waypoint Gateway owns, ready for server-side apply (pure). */
export function planWaypoint(g: Gateway, p: WaypointParams): Manifest[] {
  const namespace = g.metadata.namespace ?? "default";
  const name = g.metadata.name;
  const local = waypointObjects(g);
  const ownerReferences = [
    {
      apiVersion: `${GATEWAY_GROUP}/v1`,
      kind: "Gateway",
      name,
      uid: g.metadata.uid ?? "",
      controller: true,
    },
  ];
  // The local provider's metadata without its synthetic uid; owned, and marked as ours.
  const meta = (m: KubeObject["metadata"], extra: Record<string, string> = {}) => {
    const { uid: _uid, ...rest } = m;
    return {
      ...rest,
      labels: { ...(m.labels ?? {}), ...extra, [LABEL_MANAGED_BY]: DEPLOYER_FIELD_MANAGER },
      ownerReferences,
    };
  };
  const podLabels = { ...(local.deployment.spec.template.metadata?.labels ?? {}) };
  delete podLabels[LABEL_LOCAL_WAYPOINT]; // only `ambit up` reads it
  const configMap: Manifest = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: meta({ name: rootConfigMapName(name), namespace, labels: { [LABEL_GATEWAY_NAME]: name } }),
    data: { "root-cert.pem": p.rootPem },
  };
  const deployment: Manifest = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(local.deployment.metadata),
    spec: {
      replicas: local.deployment.spec.replicas ?? 1,
      selector: local.deployment.spec.selector,
      template: {
        metadata: {
          labels: podLabels,
          ...(local.deployment.spec.template.metadata?.annotations
            ? { annotations: local.deployment.spec.template.metadata.annotations }
            : {}),
        },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 30,
          securityContext: { runAsNonRoot: true, runAsUser: 1337, runAsGroup: 1337 },
          containers: [
            {
              name: "waypoint",
              image: p.image,
              args: ["waypoint"],
              env: [
                { name: "AMBIT_WAYPOINT", value: `${namespace}/${name}` },
                { name: "AMBIT_XDS_ADDRESS", value: p.xdsAddress },
                { name: "AMBIT_CA_ADDRESS", value: p.xdsAddress },
                { name: "AMBIT_CONTROLLER_ROOT", value: `${ROOT_DIR}/root-cert.pem` },
                { name: "AMBIT_TOKEN_FILE", value: `${TOKEN_DIR}/ambit-ca-token` },
                { name: "AMBIT_TRUST_DOMAIN", value: p.trustDomain },
                { name: "AMBIT_CLUSTER_DOMAIN", value: p.clusterDomain },
                { name: "AMBIT_SERVICE_ACCOUNT", value: name },
                { name: "AMBIT_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
                ...(p.otlpEndpoint ? [{ name: "AMBIT_OTLP_ENDPOINT", value: p.otlpEndpoint }] : []),
              ],
              ports: [
                { name: "hbone", containerPort: WAYPOINT_HBONE_PORT },
                { name: "http-metrics", containerPort: 15020 },
              ],
              readinessProbe: { httpGet: { path: "/healthz/ready", port: 15021 }, periodSeconds: 5 },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "ca-token", mountPath: TOKEN_DIR, readOnly: true },
                { name: "root-cert", mountPath: ROOT_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            {
              name: "ca-token",
              projected: {
                sources: [
                  {
                    serviceAccountToken: {
                      audience: "ambit-ca",
                      expirationSeconds: 43200,
                      path: "ambit-ca-token",
                    },
                  },
                ],
              },
            },
            { name: "root-cert", configMap: { name: rootConfigMapName(name) } },
          ],
        },
      },
    },
  };
  return [
    { ...local.serviceAccount, metadata: meta(local.serviceAccount.metadata) },
    configMap,
    { ...local.service, metadata: meta(local.service.metadata) },
    deployment,
  ];
}

const API_PATHS: Record<string, (ns: string, name: string) => string> = {
  ServiceAccount: (ns, n) => `/api/v1/namespaces/${ns}/serviceaccounts/${n}`,
  ConfigMap: (ns, n) => `/api/v1/namespaces/${ns}/configmaps/${n}`,
  Service: (ns, n) => `/api/v1/namespaces/${ns}/services/${n}`,
  Deployment: (ns, n) => `/apis/apps/v1/namespaces/${ns}/deployments/${n}`,
};

export interface ObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

/** The collections the deployer writes, listed (by its label) to find what to prune. */
const COLLECTIONS: [kind: string, path: string][] = [
  ["Deployment", "/apis/apps/v1/deployments"],
  ["Service", "/api/v1/services"],
  ["ServiceAccount", "/api/v1/serviceaccounts"],
  ["ConfigMap", "/api/v1/configmaps"],
];

/**
 * Objects the deployer made for a Gateway that is no longer a waypoint (its
 * class changed; a deleted Gateway's objects go with the garbage collector):
 * ours by label, owned by a Gateway not among `wanted` (`ns/name`). Pure.
 */
export function planPrune(owned: KubeObject[], wanted: ReadonlySet<string>): ObjectRef[] {
  const out: ObjectRef[] = [];
  for (const o of owned) {
    if (o.metadata.labels?.[LABEL_MANAGED_BY] !== DEPLOYER_FIELD_MANAGER) continue;
    const owner = o.metadata.ownerReferences?.find((r) => r.kind === "Gateway" && r.controller);
    const ns = o.metadata.namespace ?? "default";
    if (owner && !wanted.has(`${ns}/${owner.name}`))
      out.push({ kind: o.kind, namespace: ns, name: o.metadata.name });
  }
  return out;
}

export interface WaypointDeployerOptions {
  client: KubeClient;
  /** The waypoint image; default: the image of the controller's own pod (`selfPod`), else "ambit". */
  image?: string;
  /** `namespace/name` of the controller's pod, to find its image. */
  selfPod?: string;
  /** Default ambit-controller.<controllerNamespace>.svc:15012. */
  xdsAddress?: string;
  controllerNamespace: string;
  trustDomain: string;
  clusterDomain?: string;
  rootPem: () => string | undefined;
  /**
   * OTLP endpoint given to every waypoint (manifests/observability sets it on
   * the controller from the ambit-waypoint-telemetry ConfigMap, which a
   * waypoint in another namespace cannot mount).
   */
  otlpEndpoint?: string;
  /** Re-apply unchanged objects after this long (someone may have edited or deleted them). Default 5 min. */
  resyncMs?: number;
  logger?: Logger;
}

export interface WaypointSyncResult {
  applied: string[];
  pruned: string[];
  errors: { gateway: string; error: string }[];
}

export class WaypointDeployer {
  private readonly log: Logger;
  private readonly status: StatusWriter;
  private image: string | undefined;
  private snapshot: ClusterSnapshot | undefined;
  /** The waypoint set at the last prune (a prune lists every namespace: only when the set changed). */
  private prunedFor: string | undefined;
  /** `ns/name` → what was last applied, when, and the address it got. */
  private readonly applied = new Map<string, { desired: string; at: number; address?: string }>();

  constructor(private readonly opts: WaypointDeployerOptions) {
    this.log = opts.logger ?? makeLogger("controller.waypoint-deployer");
    this.image = opts.image;
    this.status = new StatusWriter({
      client: opts.client,
      fieldManager: DEPLOYER_FIELD_MANAGER,
      // The Gateway as the informers last saw it: an unchanged status costs no request.
      lookup: (kind, ns, name) =>
        kind === "Gateway"
          ? this.snapshot?.gateways.find((g) => g.metadata.name === name && g.metadata.namespace === ns)
          : undefined,
    });
  }

  /** Forget what was applied (a new leader term: apply everything once). */
  reset(): void {
    this.applied.clear();
    this.prunedFor = undefined;
  }

  private async resolveImage(): Promise<string> {
    if (this.image) return this.image;
    let image = "ambit";
    if (this.opts.selfPod) {
      const [ns, name] = this.opts.selfPod.split("/");
      try {
        const pod = await this.opts.client.get<{ spec: { containers: { image?: string }[] } }>(
          `/api/v1/namespaces/${ns}/pods/${name}`,
        );
        image = pod.spec.containers[0]?.image ?? image;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, "own pod not readable: waypoints use image 'ambit'");
      }
    }
    this.image = image;
    return image;
  }

  /** Brings the cluster's waypoint objects in line with the snapshot's Gateways. Call as the leader only. */
  async sync(snapshot: ClusterSnapshot): Promise<WaypointSyncResult> {
    const result: WaypointSyncResult = { applied: [], pruned: [], errors: [] };
    this.snapshot = snapshot;
    const gateways = snapshot.gateways
      .filter(isWaypointGateway)
      .filter((g) => !(g.metadata as { deletionTimestamp?: string }).deletionTimestamp);
    const wanted = new Set(gateways.map((g) => `${g.metadata.namespace ?? "default"}/${g.metadata.name}`));
    const rootPem = this.opts.rootPem();
    if (gateways.length > 0 && !rootPem) {
      this.log.warn("no mesh root yet: waypoints wait");
      return result;
    }
    const params: WaypointParams = {
      image: gateways.length > 0 ? await this.resolveImage() : "",
      xdsAddress: this.opts.xdsAddress ?? `ambit-controller.${this.opts.controllerNamespace}.svc:15012`,
      trustDomain: this.opts.trustDomain,
      clusterDomain: this.opts.clusterDomain ?? "cluster.local",
      rootPem: rootPem ?? "",
      ...(this.opts.otlpEndpoint ? { otlpEndpoint: this.opts.otlpEndpoint } : {}),
    };
    const resyncMs = this.opts.resyncMs ?? 300_000;
    for (const g of gateways) {
      const key = `${g.metadata.namespace ?? "default"}/${g.metadata.name}`;
      try {
        const objects = planWaypoint(g, params);
        const desired = JSON.stringify(objects);
        const last = this.applied.get(key);
        let address = last?.address;
        if (!last || last.desired !== desired || Date.now() - last.at > resyncMs) {
          for (const o of objects) {
            const applied = await this.apply(o);
            if (o.kind === "Service")
              address = (applied as { spec?: { clusterIP?: string } }).spec?.clusterIP;
          }
          this.applied.set(key, { desired, at: Date.now(), ...(address ? { address } : {}) });
          result.applied.push(key);
        }
        await this.writeProgrammed(g, address, undefined);
      } catch (e) {
        const error = (e as Error).message;
        result.errors.push({ gateway: key, error });
        this.applied.delete(key);
        this.log.warn({ gateway: key, err: error }, "waypoint deploy failed");
        await this.writeProgrammed(g, undefined, error).catch(() => {});
      }
    }
    for (const key of this.applied.keys()) if (!wanted.has(key)) this.applied.delete(key);
    const wantedKey = [...wanted].sort().join(",");
    if (this.prunedFor !== wantedKey) {
      try {
        result.pruned = await this.prune(wanted);
        this.prunedFor = wantedKey;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, "prune failed; the next sync tries again");
      }
    }
    return result;
  }

  private async prune(wanted: ReadonlySet<string>): Promise<string[]> {
    const owned: KubeObject[] = [];
    for (const [kind, path] of COLLECTIONS) {
      const list = await this.opts.client.get<{ items: KubeObject[] }>(path, {
        labelSelector: `${LABEL_MANAGED_BY}=${DEPLOYER_FIELD_MANAGER}`,
      });
      for (const o of list.items) owned.push({ ...o, kind });
    }
    const pruned: string[] = [];
    for (const ref of planPrune(owned, wanted)) {
      try {
        await this.opts.client.request({
          method: "DELETE",
          path: API_PATHS[ref.kind]!(ref.namespace, ref.name),
        });
        pruned.push(`${ref.kind} ${ref.namespace}/${ref.name}`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return pruned;
  }

  private apply(o: Manifest): Promise<unknown> {
    const ns = o.metadata.namespace ?? "default";
    return this.opts.client.request({
      method: "PATCH",
      path: API_PATHS[o.kind]!(ns, o.metadata.name),
      query: { fieldManager: DEPLOYER_FIELD_MANAGER, force: true },
      contentType: "application/apply-patch+yaml",
      body: o,
    });
  }

  private async writeProgrammed(
    g: Gateway,
    address: string | undefined,
    error: string | undefined,
  ): Promise<void> {
    const namespace = g.metadata.namespace ?? "default";
    const hostname = `${g.metadata.name}.${namespace}.svc.${this.opts.clusterDomain ?? "cluster.local"}`;
    const programmed = error === undefined && address !== undefined;
    await this.status.apply({
      kind: "Gateway",
      namespace,
      name: g.metadata.name,
      observedGeneration: g.metadata.generation,
      status: {
        ...(programmed
          ? {
              addresses: [
                ...(address && address !== "None" ? [{ type: "IPAddress", value: address }] : []),
                { type: "Hostname", value: hostname },
              ],
            }
          : {}),
        conditions: [
          programmed
            ? {
                type: "Programmed",
                status: "True",
                reason: "Programmed",
                message: `Deployment, Service and ServiceAccount ${g.metadata.name} applied; HBONE at ${hostname}:${WAYPOINT_HBONE_PORT}`,
              }
            : {
                type: "Programmed",
                status: "False",
                reason: "Invalid",
                message: error ?? "the waypoint Service has no address yet",
              },
        ],
      },
    });
  }
}

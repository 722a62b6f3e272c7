// The controller's one wiring point: provider → translate → push, plus the CA
// and the admin endpoints. Everything it holds is derived from the latest
// snapshot; a snapshot that fails to translate keeps the last good state.
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { ObjectError } from "../core/errors/errors.js";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../core/model/types.js";
import { logger } from "../core/telemetry/logger.js";
import { counter, enableProcessMetrics, gauge } from "../core/telemetry/metrics.js";
import { encodeWaypointPlans, WAYPOINT_SERVICE_TYPE_URL } from "../waypoint/config-codec.js";
import { AdminServer } from "./admin.js";
import { type CallerAuthenticator, TokenFileAuthenticator } from "./ca/authn.js";
import { CertificateAuthority } from "./ca/authority.js";
import { register as registerCa } from "./ca/service.js";
import type { ControllerConfig } from "./config.js";
import { FactsFileWatcher } from "./facts-file.js";
import { KubeClient } from "./provider/kube/client.js";
import { KubeRuntime } from "./provider/kube/kube-runtime.js";
import { LocalProvider } from "./provider/local/index.js";
import type { ClusterSnapshot } from "./provider/objects.js";
import { ModelPublisher } from "./push/publish-model.js";
import { adsGrpcServerOptions, DeltaAdsServer } from "./push/server.js";
import { type TranslateResult, translate } from "./translate/index.js";
import { translateWaypoints, type WaypointStatus, type WaypointTranslation } from "./translate/waypoint.js";

const log = logger("controller");
const rejected = gauge(
  "ambit_controller_rejected_objects",
  "Objects (or fields) currently rejected, by kind",
  ["kind"],
);
const translations = counter("ambit_controller_translations_total", "Snapshots translated");

/** What the controller serves now: the model and the problems found in the input. */
export interface ControllerView {
  workloads: MeshWorkload[];
  services: MeshService[];
  policies: AuthzPolicy[];
  errors: ObjectError[];
  warnings: ObjectError[];
  /** Status conditions of Gateways and routes (Accepted, Programmed, ResolvedRefs). */
  statuses: WaypointStatus[];
  translatedAt: Date;
}

/** What both the local (YAML directory) and the kube (informers) providers give the controller. */
export interface SnapshotProvider {
  start(): Promise<void>;
  close(): Promise<void>;
  snapshot(): ClusterSnapshot;
  errors(): ObjectError[];
  on(event: "snapshot", listener: (s: ClusterSnapshot) => void): unknown;
  /** When the errors change without the snapshot changing (an object kept at its last good version). */
  on(event: "errors", listener: (errors: ObjectError[]) => void): unknown;
}

export class ControllerApp extends EventEmitter {
  readonly push = new DeltaAdsServer();
  private readonly publisher = new ModelPublisher(this.push);
  private readonly provider: SnapshotProvider;
  /** Kube mode: the cluster duties (CA root Secret, TokenReview, Lease, status). */
  private readonly kube?: KubeRuntime;
  private facts?: FactsFileWatcher;
  private ca?: CertificateAuthority;
  private servers: grpc.Server[] = [];
  private admin?: AdminServer;
  /** Errors found by translation and publishing (the provider's own are read fresh). */
  private derivedErrors: ObjectError[] = [];
  private view: ControllerView = {
    workloads: [],
    services: [],
    policies: [],
    errors: [],
    warnings: [],
    statuses: [],
    translatedAt: new Date(0),
  };
  /** Bound ports (useful when configured as 0). */
  readonly ports = { xds: 0, secure: 0, admin: 0, metrics: 0 };

  constructor(readonly cfg: ControllerConfig) {
    super();
    if (cfg.provider === "kube") {
      if (!cfg.kube) throw new Error("provider kube needs cfg.kube");
      this.kube = new KubeRuntime({
        client: KubeClient.fromSource({ kubeconfigPath: cfg.kube.kubeconfig }),
        namespace: cfg.kube.namespace,
        identity: cfg.kube.podName,
        trustDomain: cfg.trustDomain,
        caDir: cfg.caDir,
        caSecretName: cfg.kube.caRootSecret,
        allowedServiceAccounts: cfg.kube.allowedServiceAccounts,
        ...(cfg.kube.waypointOtlpEndpoint ? { waypointOtlpEndpoint: cfg.kube.waypointOtlpEndpoint } : {}),
      });
      this.provider = this.kube.provider;
    } else {
      this.provider = new LocalProvider({
        dir: cfg.configDir,
        ...(cfg.lastGoodFile ? { lastGoodFile: cfg.lastGoodFile } : {}),
      });
    }
  }

  current(): ControllerView {
    return this.view;
  }

  connections() {
    return this.push.connections();
  }

  rootPem(): string | undefined {
    return this.ca?.rootPem;
  }

  async start(): Promise<void> {
    enableProcessMetrics();
    this.provider.on("snapshot", (s: ClusterSnapshot) => this.sync(s));
    // An object that turns invalid keeps its last good version, so the snapshot
    // does not change: the errors still have to reach /debug/errors and status.
    this.provider.on("errors", () => this.refreshErrors());
    if (this.kube) {
      // The root comes from the cluster's Secret; start() resolves once the informers have synced.
      this.ca = (await this.kube.start()).ca;
    } else {
      this.ca = await CertificateAuthority.loadOrCreate(this.cfg.caDir, {
        trustDomain: this.cfg.trustDomain,
      });
      await this.provider.start();
    }
    const local = this.provider instanceof LocalProvider ? this.provider : undefined;
    if (this.cfg.factsFile && local) {
      this.facts = new FactsFileWatcher(
        this.cfg.factsFile,
        (f) => local.setFacts(f),
        (e) => log.warn({ err: e.message }, "facts file unreadable; keeping the last good facts"),
      );
      await this.facts.start();
    }
    this.sync(this.provider.snapshot());

    const authenticator: CallerAuthenticator = this.kube
      ? this.kube.authenticator
      : this.cfg.tokensFile
        ? new TokenFileAuthenticator(this.cfg.tokensFile)
        : { authenticate: async () => null };
    const caDeps = {
      ca: this.ca,
      authenticator,
      podsOnNode: (node: string) =>
        this.view.workloads
          .filter((w) => w.node === node)
          .map((w) => ({ namespace: w.namespace, serviceAccount: w.serviceAccount })),
      defaultTtlSeconds: this.cfg.certTtlSeconds,
      maxTtlSeconds: this.cfg.certTtlSeconds,
    };

    const plain = new grpc.Server(adsGrpcServerOptions);
    this.push.register(plain);
    registerCa(plain, caDeps);
    this.ports.xds = await bind(
      plain,
      `${this.cfg.listenHost}:${this.cfg.xdsPort}`,
      grpc.ServerCredentials.createInsecure(),
    );
    this.servers.push(plain);

    if (this.cfg.securePort >= 0) {
      const serving = await this.ca.issueServing({
        dnsNames: this.cfg.servingNames,
        ips: this.cfg.servingIps,
      });
      const secure = new grpc.Server(adsGrpcServerOptions);
      this.push.register(secure);
      registerCa(secure, caDeps);
      const creds = grpc.ServerCredentials.createSsl(
        Buffer.from(this.ca.rootPem),
        [
          {
            private_key: Buffer.from(serving.keyPem),
            cert_chain: Buffer.from(serving.certChainPem.join("")),
          },
        ],
        false,
      );
      this.ports.secure = await bind(secure, `${this.cfg.listenHost}:${this.cfg.securePort}`, creds);
      this.servers.push(secure);
    }

    if (this.cfg.adminPort >= 0 || this.cfg.adminSocket) {
      this.admin = new AdminServer(this);
      this.ports.admin = await this.admin.start(this.cfg.adminHost, this.cfg.adminPort, this.cfg.adminSocket);
    }
    if (this.cfg.metricsHost) {
      this.admin ??= new AdminServer(this);
      this.ports.metrics = await this.admin.startMetrics(this.cfg.metricsHost, this.cfg.metricsPort);
    }
    log.info(
      {
        ports: this.ports,
        provider: this.cfg.provider,
        configDir: this.cfg.configDir,
        trustDomain: this.cfg.trustDomain,
      },
      "controller ready",
    );
    this.emit("ready");
  }

  private translateOptions() {
    return {
      trustDomain: this.cfg.trustDomain,
      clusterId: this.cfg.clusterId,
      clusterDomain: this.cfg.clusterDomain,
      rootNamespace: this.cfg.rootNamespace,
    };
  }

  private refreshErrors(): void {
    const errors = [...this.provider.errors(), ...this.derivedErrors];
    rejected.reset();
    for (const e of errors) rejected.inc({ kind: e.object.kind });
    this.view = { ...this.view, errors };
    this.emit("errors", errors);
  }

  /** Translate a snapshot and publish it. Pure translation; the push server diffs. */
  private sync(snapshot: ClusterSnapshot): void {
    let result: TranslateResult;
    let waypoints: WaypointTranslation;
    try {
      result = translate(snapshot, this.translateOptions());
      waypoints = translateWaypoints(snapshot, result, this.translateOptions());
    } catch (e) {
      // A translator bug must not take the mesh down: keep serving the last good model.
      log.error({ err: (e as Error).message }, "translation failed; keeping the last good configuration");
      return;
    }
    translations.inc();
    // Only objects whose content changed are encoded; the push server shares
    // each encoded response among the proxies that hold the same state.
    const published = this.publisher.publish(result);
    this.push.publish(WAYPOINT_SERVICE_TYPE_URL, encodeWaypointPlans(waypoints.waypoints));
    this.derivedErrors = [...result.errors, ...waypoints.errors, ...published.rejected];
    const errors = [...this.provider.errors(), ...this.derivedErrors];

    rejected.reset();
    for (const e of errors) rejected.inc({ kind: e.object.kind });
    for (const e of errors) log.warn({ code: e.code, object: e.object, field: e.field }, e.message);
    this.view = {
      workloads: result.workloads,
      services: result.services,
      policies: result.policies,
      errors,
      warnings: [...result.warnings, ...waypoints.warnings],
      statuses: waypoints.statuses,
      translatedAt: new Date(),
    };
    // Leader only (the runtime checks): Gateway/route/policy status from this verdict.
    this.kube?.publishStatus(snapshot, { errors, warnings: this.view.warnings });
    this.emit("synced", this.view);
  }

  async close(): Promise<void> {
    this.facts?.close();
    await this.admin?.close();
    await this.push.close();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.tryShutdown(() => resolve());
            setTimeout(() => s.forceShutdown(), 2000).unref();
          }),
      ),
    );
    if (this.kube) await this.kube.close();
    else await this.provider.close();
  }
}

function bind(server: grpc.Server, addr: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

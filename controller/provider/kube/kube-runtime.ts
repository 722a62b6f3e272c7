// Everything the controller needs on a cluster, as one part with start() and
// close(): the informers (snapshot source), the CA root from its Secret, the
// TokenReview caller authenticator, leader election, and the leader-only
// duties (the waypoint GatewayClass, the root certificate ConfigMap the
// ztunnels mount, status writes). The controller's wiring
// point uses `provider` where it would use the local provider, gives
// `authenticator` and `ca` to the CA service, and calls publishStatus() after
// each translation.
import type { ObjectError } from "../../../core/errors/errors.js";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import type { CertificateAuthority } from "../../ca/authority.js";
import type { ClusterSnapshot } from "../objects.js";
import { loadOrCreateCaFromSecret, publishRootCert } from "./ca-root-secret.js";
import type { KubeClient } from "./client.js";
import { ensureWaypointGatewayClass } from "./gateway-class.js";
import { KubeProvider } from "./kube-provider.js";
import { LeaderElector } from "./leader-election.js";
import { statusFromTranslation } from "./status-from-translation.js";
import { StatusWriter } from "./status-writer.js";
import { TokenReviewAuthenticator } from "./tokenreview-authn.js";
import { WaypointDeployer } from "./waypoint-deployer.js";

export interface KubeRuntimeOptions {
  client: KubeClient;
  /** The controller's namespace (Lease and CA Secret live there). */
  namespace: string;
  /** This replica (default: hostname + pid). */
  identity?: string;
  trustDomain: string;
  /** Where the CA root from the Secret is materialized. */
  caDir: string;
  caSecretName?: string;
  /** `ns/name` of the service accounts whose tokens may ask for certificates. */
  allowedServiceAccounts: string[];
  leaseName?: string;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  debounceMs?: number;
  /** Image of the waypoint Deployments (default: this controller pod's own image). */
  waypointImage?: string;
  /** OTLP endpoint for the deployed waypoints' spans (AMBIT_OTLP_ENDPOINT in their pods). */
  waypointOtlpEndpoint?: string;
  clusterDomain?: string;
  logger?: Logger;
}

export class KubeRuntime {
  readonly provider: KubeProvider;
  readonly elector: LeaderElector;
  readonly authenticator: TokenReviewAuthenticator;
  readonly status: StatusWriter;
  readonly waypoints: WaypointDeployer;
  ca: CertificateAuthority | undefined;
  private readonly log: Logger;
  private pending:
    | {
        snapshot: ClusterSnapshot;
        result: { errors: readonly ObjectError[]; warnings: readonly ObjectError[] };
      }
    | undefined;
  private writing: Promise<void> | undefined;
  private classApplied = false;
  private rootPublished = false;
  private closed = false;

  constructor(private readonly opts: KubeRuntimeOptions) {
    this.log = opts.logger ?? makeLogger("controller.kube");
    const client = opts.client;
    this.provider = new KubeProvider({ client, debounceMs: opts.debounceMs });
    this.elector = new LeaderElector({
      client,
      namespace: opts.namespace,
      name: opts.leaseName,
      identity: opts.identity,
      leaseDurationSeconds: opts.leaseDurationSeconds,
      renewDeadlineMs: opts.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs,
    });
    this.authenticator = new TokenReviewAuthenticator({
      client,
      allowedServiceAccounts: opts.allowedServiceAccounts,
    });
    this.status = new StatusWriter({
      client,
      lookup: (k, ns, n) => this.provider.get(k, ns, n),
      isLeader: () => this.elector.isLeader(),
    });
    this.waypoints = new WaypointDeployer({
      client,
      ...(opts.waypointImage ? { image: opts.waypointImage } : {}),
      ...(opts.identity ? { selfPod: `${opts.namespace}/${opts.identity}` } : {}),
      controllerNamespace: opts.namespace,
      trustDomain: opts.trustDomain,
      ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}),
      ...(opts.waypointOtlpEndpoint ? { otlpEndpoint: opts.waypointOtlpEndpoint } : {}),
      rootPem: () => this.ca?.rootPem,
    });
  }

  /** Loads (or creates) the CA root, syncs the informers, starts campaigning. Resolves when the snapshot is complete. */
  async start(): Promise<{ ca: CertificateAuthority }> {
    const { ca } = await loadOrCreateCaFromSecret({
      client: this.opts.client,
      namespace: this.opts.namespace,
      name: this.opts.caSecretName,
      dir: this.opts.caDir,
      trustDomain: this.opts.trustDomain,
    });
    this.ca = ca;
    await this.provider.start();
    this.elector.on("started-leading", () => {
      this.classApplied = false;
      this.rootPublished = false;
      this.waypoints.reset();
      this.kick();
    });
    this.elector.start();
    return { ca };
  }

  /** Hands the latest translation to the leader's status writer (coalesced: only the newest pending one is written). */
  publishStatus(
    snapshot: ClusterSnapshot,
    result: { errors: readonly ObjectError[]; warnings: readonly ObjectError[] },
  ): void {
    this.pending = { snapshot, result };
    this.kick();
  }

  /** Resolves when no status write is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private kick(): void {
    if (this.writing || this.closed || !this.elector.isLeader()) return;
    this.writing = this.leaderDuties()
      .catch((e) =>
        this.log.warn({ err: (e as Error).message }, "leader duties failed; retrying with the next snapshot"),
      )
      .finally(() => {
        this.writing = undefined;
        if (this.pending && this.elector.isLeader() && !this.closed) this.kick();
      });
  }

  private async leaderDuties(): Promise<void> {
    if (!this.classApplied) {
      const r = await ensureWaypointGatewayClass(this.opts.client);
      // "absent-crd": the Gateway API arrives later; the next snapshot tries again.
      this.classApplied = r !== "absent-crd";
    }
    if (!this.rootPublished && this.ca) {
      await publishRootCert(this.opts.client, this.opts.namespace, this.ca.rootPem);
      this.rootPublished = true;
    }
    const job = this.pending;
    this.pending = undefined;
    if (job) {
      await this.status.applyAll(statusFromTranslation(job.snapshot, job.result));
      await this.waypoints.sync(job.snapshot);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.idle();
    await this.elector.close();
    await this.provider.close();
  }
}

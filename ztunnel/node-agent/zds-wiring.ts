// ztunnel's CNI mode as one part (start/close): the ZDS socket, the table of
// the node's pods it fills, the enrolment decision (controller's model, else
// the API), the netns scan for pods the plugin never reported, the plugin's
// installation, and the uninstall check on exit. app.ts reconciles its
// NodeAgent against pods() together with the pods file's.
import { fileURLToPath } from "node:url";
import { KubeClient } from "../../controller/provider/kube/client.js";
import { type Logger, logger } from "../../core/telemetry/logger.js";
import type { ZtunnelConfig } from "../config.js";
import type { MeshState } from "../state/mesh-state.js";
import type { EnrolledPod } from "./agent.js";
import type { CniAdd } from "./zds-codec.js";
import { EnrolledNamespacesFile, enrolledNamespacesOf } from "./zds-enrolled-file.js";
import { KubeEnrolment } from "./zds-enrolment.js";
import { CniInstaller } from "./zds-install.js";
import { findNetnsByIp, type NetnsScanOptions } from "./zds-netns-scan.js";
import { CniNodePods, type NodePod, type PodCapturer } from "./zds-node-pods.js";
import { ZdsServer } from "./zds-server.js";

/** A missing pod's namespace is looked for again after this long. */
const RESCAN_MS = 30_000;

export interface CniWiringOptions {
  cfg: ZtunnelConfig;
  state: MeshState;
  capturer: PodCapturer;
  onChange(): void;
  scan?: NetnsScanOptions;
  log?: Logger;
}

export class CniWiring {
  readonly table: CniNodePods;
  readonly server: ZdsServer;
  private readonly installer?: CniInstaller;
  /** The enrolled namespaces beside the socket: the plugin fails closed for them while ztunnel is down. */
  readonly enrolledFile: EnrolledNamespacesFile;
  private kube?: KubeEnrolment;
  private readonly scanTried = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: CniWiringOptions) {
    const { cfg } = opts;
    this.log = opts.log ?? logger("ztunnel.cni");
    if (!opts.scan && cfg.cniScanPrefix) opts.scan = { namePrefix: cfg.cniScanPrefix, procDir: "" };
    this.table = new CniNodePods({
      capturer: opts.capturer,
      decide: (p) => this.decide(p),
      onChange: opts.onChange,
      log: this.log,
    });
    this.enrolledFile = new EnrolledNamespacesFile(cfg.cniSocket!);
    this.server = new ZdsServer({ socketPath: cfg.cniSocket!, handler: this.table, log: this.log });
    if (cfg.cniBinDir && cfg.cniConfDir) {
      this.installer = new CniInstaller({
        binDir: cfg.cniBinDir,
        confDir: cfg.cniConfDir,
        hostBinDir: cfg.cniHostBinDir,
        socketPath: cfg.cniSocket!,
        sourceDir: fileURLToPath(new URL("../../cni/", import.meta.url)),
        copyNode: cfg.cniCopyNode,
        log: this.log,
      });
    }
  }

  pods(): NodePod[] {
    return this.table.pods();
  }

  async start(): Promise<void> {
    const api = this.opts.cfg.kubeApi;
    if (api) {
      const client = KubeClient.fromSource(api === "in-cluster" ? {} : { kubeconfigPath: api });
      this.kube = new KubeEnrolment(client, this.log);
    }
    await this.server.start();
    // The plugin goes into the chain only once its socket answers.
    await this.installer?.start();
  }

  /** The controller's model when it lists the pod, else the API, else undecided. */
  async decide(p: CniAdd): Promise<boolean | undefined> {
    for (const ip of p.ips) {
      const w = this.opts.state.workloadByIp(ip);
      if (w && w.namespace === p.namespace && w.name === p.name) return w.tunnel === "hbone";
    }
    return this.kube?.decide(p);
  }

  /** Rewrites the enrolled-namespaces file when the model's set changed (a walk of the workloads, no copy of the model). */
  async writeEnrolledNamespaces(): Promise<void> {
    await this.enrolledFile
      .update(enrolledNamespacesOf(this.opts.state.allWorkloads()))
      .catch((e: Error) => this.log.warn({ err: e.message }, "enrolled-namespaces file not written"));
  }

  /**
   * Looks for the namespaces of this node's enrolled workloads that no one
   * reported (not in `others`, not from the plugin), by their IPs; forgets
   * scanned pods the model no longer lists.
   */
  async scanForUnknownPods(others: EnrolledPod[]): Promise<void> {
    // Called on each reconcile pass (after xDS synced, on every model change).
    await this.writeEnrolledNamespaces();
    const node = this.opts.cfg.nodeName;
    const local = this.opts.state.localWorkloads(node);
    const localIps = new Set(local.flatMap((w) => w.ips));
    this.table.forgetScanned((p) => localIps.has(p.ip));
    const known = new Set([...others.map((p) => p.ip), ...this.table.knownIps()]);
    const now = Date.now();
    const missing = local.filter(
      (w) =>
        w.tunnel === "hbone" &&
        !w.ips.some((ip) => known.has(ip)) &&
        w.ips.some((ip) => now - (this.scanTried.get(ip) ?? 0) > RESCAN_MS),
    );
    if (missing.length === 0) return;
    const ips = missing.flatMap((w) => w.ips);
    for (const ip of ips) this.scanTried.set(ip, now);
    const found = await findNetnsByIp(ips, this.opts.scan);
    const pods = missing.flatMap((w) => {
      const ip = w.ips.find((i) => found.has(i));
      return ip ? [{ key: `${w.namespace}/${w.name}`, netnsPath: found.get(ip)!, ip }] : [];
    });
    if (pods.length > 0) this.log.info({ pods: pods.map((p) => p.key) }, "found running pods by their IPs");
    const notFound = missing.length - pods.length;
    if (notFound > 0)
      this.log.warn({ count: notFound }, "enrolled pods of this node whose namespace was not found");
    this.table.addScanned(pods);
  }

  /**
   * Stops taking pods; then, when our DaemonSet is gone or being deleted
   * (uninstall, not upgrade), takes the plugin out. Returns whether this is
   * an uninstall (then capture should be removed from the pods too).
   */
  async closeAndCheckUninstall(): Promise<boolean> {
    await this.server.close();
    const { podNamespace, daemonSetName } = this.opts.cfg;
    const uninstall =
      this.kube && podNamespace
        ? (await this.kube.daemonSetDeleted(podNamespace, daemonSetName)) === true
        : false;
    await this.installer?.close({ uninstall });
    if (uninstall) await this.enrolledFile.remove();
    return uninstall;
  }
}

// The node's pods as the CNI plugin reports them (and as the netns scan finds
// them), and the ZDS handler that turns a report into capture. The ztunnel
// reconciles its NodeAgent against `pods()`, exactly as it does with the
// pods file of `ambit up`.
//
// Enrolment: at ADD time the pod has no IP in the API yet, so the controller's
// model (xDS) does not list it; `decide` asks whoever knows (the API's
// namespace and pod labels, see zds-enrolment.ts). A pod decided enrolled is
// captured before the ack, so its containers never run uncaptured. Once the
// pod's workload reaches this ztunnel over xDS, the model decides (label
// changes enrol or release running pods); the ADD-time decision only covers
// the gap. Undecided (no API): captured as soon as the model lists it.
import type { Logger } from "../../core/telemetry/logger.js";
import { logger } from "../../core/telemetry/logger.js";
import type { EnrolledPod } from "./agent.js";
import type { CniAdd, CniDel } from "./zds-codec.js";
import { netnsAddresses } from "./zds-netns-scan.js";
import type { ZdsHandler } from "./zds-server.js";

export interface NodePod extends EnrolledPod {
  uid?: string;
  /** The sandbox the CNI plugin reported (a DEL for another sandbox is ignored). */
  containerId?: string;
  source: "cni" | "scan";
  /** The ADD-time decision; used until the controller's model lists the pod. */
  enrolHint?: boolean;
}

/** The part of NodeAgent this needs. */
export interface PodCapturer {
  enroll(pod: EnrolledPod): Promise<unknown>;
  unenroll(key: string): Promise<void>;
}

export interface CniNodePodsOptions {
  capturer: PodCapturer;
  /** true: enrolled; false: not; undefined: cannot tell now (the model decides later). */
  decide(pod: CniAdd): Promise<boolean | undefined>;
  /** The set of pods changed: reconcile. */
  onChange(): void;
  /** The pod's addresses when the plugin sent none (default: read inside its namespace). */
  addressesOf?(netnsPath: string): string[];
  log?: Logger;
}

/** The IPv4 address when there is one (what the capture rules and the model key on), else the first. */
export function primaryIp(ips: string[]): string | undefined {
  return ips.find((ip) => ip.includes(".")) ?? ips[0];
}

export class CniNodePods implements ZdsHandler {
  private readonly byKey = new Map<string, NodePod>();
  private readonly log: Logger;

  constructor(private readonly opts: CniNodePodsOptions) {
    this.log = opts.log ?? logger("ztunnel.cni");
  }

  pods(): NodePod[] {
    return [...this.byKey.values()];
  }

  get(key: string): NodePod | undefined {
    return this.byKey.get(key);
  }

  knownIps(): Set<string> {
    return new Set([...this.byKey.values()].map((p) => p.ip));
  }

  async add(req: CniAdd): Promise<{ captured: boolean }> {
    let ips = req.ips;
    if (ips.length === 0) ips = (this.opts.addressesOf ?? netnsAddresses)(req.netnsPath);
    const ip = primaryIp(ips);
    if (!ip)
      throw new Error(`pod ${req.key}: no IP address (none in the CNI result nor in ${req.netnsPath})`);
    const decision = await this.opts.decide(req);
    const pod: NodePod = {
      key: req.key,
      netnsPath: req.netnsPath,
      ip,
      source: "cni",
      ...(req.uid ? { uid: req.uid } : {}),
      ...(req.containerId ? { containerId: req.containerId } : {}),
      ...(decision !== undefined ? { enrolHint: decision } : {}),
    };
    this.byKey.set(req.key, pod);
    let captured = false;
    if (decision === true) {
      try {
        await this.opts.capturer.enroll({ key: pod.key, netnsPath: pod.netnsPath, ip: pod.ip });
        captured = true;
      } catch (e) {
        // The sandbox will be retried by the runtime (a new ADD).
        this.byKey.delete(req.key);
        throw e;
      }
    }
    this.log.info({ pod: req.key, ip, decision: decision ?? "later", netns: req.netnsPath }, "CNI add");
    this.opts.onChange();
    return { captured };
  }

  async del(req: CniDel): Promise<void> {
    const known = this.byKey.get(req.key);
    if (known?.containerId && req.containerId && known.containerId !== req.containerId) {
      this.log.info({ pod: req.key, sandbox: req.containerId }, "CNI del of an older sandbox: ignored");
      return;
    }
    this.byKey.delete(req.key);
    await this.opts.capturer.unenroll(req.key);
    this.opts.onChange();
  }

  /** Pods found by scanning (ignored where the CNI plugin already reported the key). */
  addScanned(found: { key: string; netnsPath: string; ip: string; uid?: string }[]): void {
    let changed = false;
    for (const f of found) {
      if (this.byKey.has(f.key)) continue;
      this.byKey.set(f.key, { ...f, source: "scan" });
      changed = true;
    }
    if (changed) this.opts.onChange();
  }

  /** Drops scanned pods the model no longer lists on this node (deleted while no DEL could reach us). */
  forgetScanned(keep: (p: NodePod) => boolean): void {
    for (const [k, p] of this.byKey) if (p.source === "scan" && !keep(p)) this.byKey.delete(k);
  }
}

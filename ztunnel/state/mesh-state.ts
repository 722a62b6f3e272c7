// The ztunnel's address index: the one owner of workloads, services and
// authorization policies as the xDS client delivered them. The proxy asks it
// "what is this IP", "which endpoint for this service port", "which
// waypoint", "which policies apply to this workload". Updates arrive as
// model objects (the xDS codecs convert at the edge); every lookup is a Map
// hit so the per-connection path stays cheap.
import type { AuthzPolicy, GatewayAddress, MeshService, MeshWorkload } from "../../core/model/types.js";
import { logger } from "../../core/telemetry/logger.js";
import { counter, gauge } from "../../core/telemetry/metrics.js";

const log = logger("ztunnel.state");
const ipConflicts = counter(
  "ambit_state_ip_conflicts_total",
  "Workload or service addresses refused because another object already holds that IP",
  ["kind"],
);
const stateSize = gauge("ambit_state_objects", "Objects held in the ztunnel address index", ["type"]);

type IdentityParts = Pick<MeshWorkload, "trustDomain" | "namespace" | "serviceAccount">;
/**
 * The identity string per workload object: the proxies ask for it on every
 * connection, and each connection record keeps what it got for the
 * connection's life; one string per workload instead of one per connection.
 */
const identities = new WeakMap<IdentityParts, { parts: IdentityParts; id: string }>();

/** spiffe://td/ns/X/sa/Y of a workload. */
export function workloadIdentity(w: IdentityParts): string {
  const hit = identities.get(w);
  // Checked against the fields: a caller may reuse (mutate) a plain object.
  if (
    hit &&
    hit.parts.trustDomain === w.trustDomain &&
    hit.parts.namespace === w.namespace &&
    hit.parts.serviceAccount === w.serviceAccount
  )
    return hit.id;
  const id = `spiffe://${w.trustDomain || "cluster.local"}/ns/${w.namespace}/sa/${w.serviceAccount}`;
  identities.set(w, {
    parts: { trustDomain: w.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount },
    id,
  });
  return id;
}

export type AddressLookup =
  | { kind: "workload"; workload: MeshWorkload }
  | { kind: "service"; service: MeshService };
/** What the xDS client hands over: model objects, or the codec's tagged form. */
export type AddressInput = MeshWorkload | MeshService | AddressLookup;

export interface PickedEndpoint {
  workload: MeshWorkload;
  /** The IP to reach it on (its first IP). */
  ip: string;
  /** The application port on the workload for the requested service port. */
  targetPort: number;
}

export interface PickOptions {
  /** Answer what the next pick would be without advancing round robin (`ambit why`). */
  peek?: boolean;
}

export interface ResolvedWaypoint {
  /** Where the HBONE tunnel goes. */
  ip: string;
  port: number;
  /** Expected SPIFFE id of the waypoint, when its workload is known. */
  identity?: string;
  workload?: MeshWorkload;
}

export interface MeshStateDump {
  workloads: MeshWorkload[];
  services: MeshService[];
  policies: AuthzPolicy[];
}

function isTagged(x: AddressInput): x is AddressLookup {
  return (
    "kind" in x && (x.kind === "workload" || x.kind === "service") && ("workload" in x || "service" in x)
  );
}

export class MeshState {
  private readonly workloads = new Map<string, MeshWorkload>();
  private readonly workloadByIpIndex = new Map<string, string>();
  private readonly services = new Map<string, MeshService>();
  private readonly serviceByVipIndex = new Map<string, string>();
  private readonly serviceByHostIndex = new Map<string, string>();
  /** Service key → uids of workloads that back it. */
  private readonly backends = new Map<string, Set<string>>();
  private readonly rr = new Map<string, number>();
  private readonly policies = new Map<string, AuthzPolicy>();
  private readonly globalPolicies = new Set<string>();
  private readonly namespacePolicies = new Map<string, Set<string>>();

  /** Upserts workloads/services and removes others by xDS resource name (workload uid or service key). */
  applyAddresses(upserts: readonly AddressInput[], removed: readonly string[] = []): void {
    for (const name of removed) {
      if (this.workloads.has(name)) this.removeWorkload(name);
      else if (this.services.has(name)) this.removeService(name);
    }
    for (const x of upserts) {
      const a: AddressLookup = isTagged(x)
        ? x
        : "uid" in x
          ? { kind: "workload", workload: x }
          : { kind: "service", service: x };
      if (a.kind === "workload") this.upsertWorkload(a.workload);
      else this.upsertService(a.service);
    }
    stateSize.set({ type: "workload" }, this.workloads.size);
    stateSize.set({ type: "service" }, this.services.size);
  }

  /** Upserts policies and removes others by `<ns>/<name>`. */
  applyPolicies(upserts: readonly AuthzPolicy[], removed: readonly string[] = []): void {
    for (const key of removed) this.removePolicy(key);
    for (const p of upserts) {
      const key = `${p.namespace}/${p.name}`;
      this.removePolicy(key);
      this.policies.set(key, p);
      if (p.scope === "global") this.globalPolicies.add(key);
      else if (p.scope === "namespace") {
        let s = this.namespacePolicies.get(p.namespace);
        if (!s) {
          s = new Set();
          this.namespacePolicies.set(p.namespace, s);
        }
        s.add(key);
      }
    }
    stateSize.set({ type: "policy" }, this.policies.size);
  }

  /** Drops everything (a state-of-the-world resync starts from here). */
  clear(): void {
    for (const m of [
      this.workloads,
      this.workloadByIpIndex,
      this.services,
      this.serviceByVipIndex,
      this.serviceByHostIndex,
      this.backends,
      this.rr,
      this.policies,
      this.namespacePolicies,
    ])
      m.clear();
    this.globalPolicies.clear();
  }

  workload(uid: string): MeshWorkload | undefined {
    return this.workloads.get(uid);
  }

  service(key: string): MeshService | undefined {
    return this.services.get(key);
  }

  policy(key: string): AuthzPolicy | undefined {
    return this.policies.get(key);
  }

  /** A workload's IP or a service VIP. */
  lookup(ip: string): AddressLookup | undefined {
    const key = this.serviceByVipIndex.get(ip);
    if (key !== undefined) return { kind: "service", service: this.services.get(key) as MeshService };
    const uid = this.workloadByIpIndex.get(ip);
    if (uid !== undefined) return { kind: "workload", workload: this.workloads.get(uid) as MeshWorkload };
    return undefined;
  }

  workloadByIp(ip: string): MeshWorkload | undefined {
    const uid = this.workloadByIpIndex.get(ip);
    return uid === undefined ? undefined : this.workloads.get(uid);
  }

  serviceByVip(ip: string): MeshService | undefined {
    const key = this.serviceByVipIndex.get(ip);
    return key === undefined ? undefined : this.services.get(key);
  }

  /** By fully qualified hostname (`name.ns.svc.cluster.local`); the DNS proxy's source. */
  serviceByHostname(hostname: string): MeshService | undefined {
    const key = this.serviceByHostIndex.get(hostname.toLowerCase());
    return key === undefined ? undefined : this.services.get(key);
  }

  /** Every workload backing a service, healthy or not. */
  endpointsOf(service: MeshService): MeshWorkload[] {
    const uids = this.backends.get(service.key);
    if (!uids) return [];
    const out: MeshWorkload[] = [];
    for (const uid of uids) {
      const w = this.workloads.get(uid);
      if (w) out.push(w);
    }
    return out;
  }

  /** IPs of a service's healthy workloads (headless DNS answers). */
  endpointIps(service: MeshService): string[] {
    return this.endpointsOf(service)
      .filter((w) => w.healthy && w.ips.length > 0)
      .map((w) => w.ips[0] as string);
  }

  /**
   * Round robin over the healthy workloads that back `service` on `port`
   * (a service port). The target port comes from the workload's own mapping
   * (named ports resolved per workload), else the service's targetPort.
   */
  pickEndpoint(service: MeshService, port: number, opts: PickOptions = {}): PickedEndpoint | undefined {
    const uids = this.backends.get(service.key);
    if (!uids || uids.size === 0) return undefined;
    const sp = service.ports.find((p) => p.port === port);
    const candidates: PickedEndpoint[] = [];
    for (const uid of uids) {
      const w = this.workloads.get(uid);
      if (!w?.healthy || w.ips.length === 0) continue;
      const ports = w.services[service.key] ?? [];
      const wp = ports.find((p) => p.servicePort === port);
      let targetPort = wp?.targetPort || sp?.targetPort || 0;
      if (!wp && !sp) {
        // A port the service does not declare: only reachable when the service declares no ports at all.
        if (service.ports.length > 0 || ports.length > 0) continue;
        targetPort = port;
      }
      if (!targetPort) targetPort = port;
      candidates.push({ workload: w, ip: w.ips[0] as string, targetPort });
    }
    if (candidates.length === 0) return undefined;
    // Stable order so round robin is fair regardless of Set insertion order.
    candidates.sort((a, b) => (a.workload.uid < b.workload.uid ? -1 : 1));
    const rrKey = `${service.key}:${port}`;
    const n = this.rr.get(rrKey) ?? 0;
    if (!opts.peek) this.rr.set(rrKey, n + 1);
    return candidates[n % candidates.length];
  }

  /** Where a service's or workload's waypoint is reached, or undefined when it has none (or it cannot be resolved). */
  waypointOf(x: MeshService | MeshWorkload, opts: PickOptions = {}): ResolvedWaypoint | undefined {
    return x.waypoint ? this.resolveGateway(x.waypoint, opts) : undefined;
  }

  resolveGateway(g: GatewayAddress, opts: PickOptions = {}): ResolvedWaypoint | undefined {
    const port = g.hboneMtlsPort || 15008;
    let svc: MeshService | undefined;
    if (g.address) {
      const hit = this.lookup(g.address);
      if (hit?.kind === "workload") {
        return { ip: g.address, port, identity: workloadIdentity(hit.workload), workload: hit.workload };
      }
      if (hit?.kind === "service") svc = hit.service;
      else return { ip: g.address, port };
    } else if (g.hostname) {
      svc = this.services.get(`${g.hostname.namespace}/${g.hostname.hostname}`);
    }
    if (!svc) return undefined;
    const picked = this.pickEndpoint(svc, port, opts) ?? this.pickAnyHealthy(svc, opts);
    if (!picked) return undefined;
    return { ip: picked.ip, port, identity: workloadIdentity(picked.workload), workload: picked.workload };
  }

  /** Every workload of the mesh, as held (not copied: callers only read). */
  allWorkloads(): Iterable<MeshWorkload> {
    return this.workloads.values();
  }

  /** Enrolled or not, the workloads scheduled on a node. */
  localWorkloads(node: string): MeshWorkload[] {
    const out: MeshWorkload[] = [];
    for (const w of this.workloads.values()) if (w.node === node) out.push(w);
    return out;
  }

  /** Policies that apply to a workload: global, its namespace's, and those selecting it. */
  policiesFor(w: MeshWorkload): AuthzPolicy[] {
    const out: AuthzPolicy[] = [];
    for (const k of this.globalPolicies) out.push(this.policies.get(k) as AuthzPolicy);
    const ns = this.namespacePolicies.get(w.namespace);
    if (ns) for (const k of ns) out.push(this.policies.get(k) as AuthzPolicy);
    for (const k of w.authorizationPolicies) {
      const p = this.policies.get(k);
      // A namespace/global policy listed again must not be evaluated twice.
      if (p && p.scope === "workload") out.push(p);
    }
    return out;
  }

  /** Services a workload backs on a given target port (for metric labels). */
  servicesServedOn(w: MeshWorkload, targetPort: number): MeshService[] {
    const out: MeshService[] = [];
    for (const [key, ports] of Object.entries(w.services)) {
      if (!ports.some((p) => p.targetPort === targetPort)) continue;
      const s = this.services.get(key);
      if (s) out.push(s);
    }
    return out;
  }

  /** Plain JSON for the admin config dump, sorted for stable diffs. */
  dump(): MeshStateDump {
    return JSON.parse(
      JSON.stringify({
        workloads: [...this.workloads.values()].sort((a, b) => a.uid.localeCompare(b.uid)),
        services: [...this.services.values()].sort((a, b) => a.key.localeCompare(b.key)),
        policies: [...this.policies.values()].sort((a, b) =>
          `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
        ),
      }),
    ) as MeshStateDump;
  }

  get size(): { workloads: number; services: number; policies: number } {
    return { workloads: this.workloads.size, services: this.services.size, policies: this.policies.size };
  }

  private pickAnyHealthy(svc: MeshService, opts: PickOptions): PickedEndpoint | undefined {
    const ws = this.endpointsOf(svc).filter((w) => w.healthy && w.ips.length > 0);
    if (ws.length === 0) return undefined;
    const rrKey = `${svc.key}:*`;
    const n = this.rr.get(rrKey) ?? 0;
    if (!opts.peek) this.rr.set(rrKey, n + 1);
    const w = ws[n % ws.length] as MeshWorkload;
    return { workload: w, ip: w.ips[0] as string, targetPort: 0 };
  }

  private upsertWorkload(w: MeshWorkload): void {
    const old = this.workloads.get(w.uid);
    if (old) this.unindexWorkload(old);
    this.workloads.set(w.uid, w);
    for (const ip of w.ips) {
      const holder = this.workloadByIpIndex.get(ip);
      if ((holder !== undefined && holder !== w.uid) || this.serviceByVipIndex.has(ip)) {
        ipConflicts.inc({ kind: "workload" });
        log.warn(
          { uid: w.uid, ip, heldBy: holder ?? this.serviceByVipIndex.get(ip) },
          "workload IP already in use; not indexed",
        );
        continue;
      }
      this.workloadByIpIndex.set(ip, w.uid);
    }
    for (const key of Object.keys(w.services)) {
      let s = this.backends.get(key);
      if (!s) {
        s = new Set();
        this.backends.set(key, s);
      }
      s.add(w.uid);
    }
  }

  private unindexWorkload(w: MeshWorkload): void {
    for (const ip of w.ips) if (this.workloadByIpIndex.get(ip) === w.uid) this.workloadByIpIndex.delete(ip);
    for (const key of Object.keys(w.services)) {
      const s = this.backends.get(key);
      if (!s) continue;
      s.delete(w.uid);
      if (s.size === 0) this.backends.delete(key);
    }
  }

  private removeWorkload(uid: string): void {
    const w = this.workloads.get(uid);
    if (!w) return;
    this.unindexWorkload(w);
    this.workloads.delete(uid);
  }

  private upsertService(s: MeshService): void {
    const old = this.services.get(s.key);
    if (old) this.unindexService(old);
    this.services.set(s.key, s);
    for (const vip of s.vips) {
      const holder = this.serviceByVipIndex.get(vip);
      if ((holder !== undefined && holder !== s.key) || this.workloadByIpIndex.has(vip)) {
        ipConflicts.inc({ kind: "service" });
        log.warn(
          { service: s.key, vip, heldBy: holder ?? this.workloadByIpIndex.get(vip) },
          "service VIP already in use; not indexed",
        );
        continue;
      }
      this.serviceByVipIndex.set(vip, s.key);
    }
    this.serviceByHostIndex.set(s.hostname.toLowerCase(), s.key);
  }

  private unindexService(s: MeshService): void {
    for (const vip of s.vips)
      if (this.serviceByVipIndex.get(vip) === s.key) this.serviceByVipIndex.delete(vip);
    if (this.serviceByHostIndex.get(s.hostname.toLowerCase()) === s.key)
      this.serviceByHostIndex.delete(s.hostname.toLowerCase());
  }

  private removeService(key: string): void {
    const s = this.services.get(key);
    if (!s) return;
    this.unindexService(s);
    this.services.delete(key);
    for (const k of this.rr.keys()) if (k.startsWith(`${key}:`)) this.rr.delete(k);
  }

  private removePolicy(key: string): void {
    const p = this.policies.get(key);
    if (!p) return;
    this.policies.delete(key);
    this.globalPolicies.delete(key);
    const s = this.namespacePolicies.get(p.namespace);
    if (s) {
      s.delete(key);
      if (s.size === 0) this.namespacePolicies.delete(p.namespace);
    }
  }
}

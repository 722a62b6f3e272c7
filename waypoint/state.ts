// The waypoint's live configuration: services compiled for the data path,
// indexed by VIP:port and hostname, and the clusters (with their pools) they
// route to. Updates are all-or-nothing per service: a service that fails to
// compile throws (→ NACK) and its previous version stays.
import type { WaypointCluster, WaypointProtocol, WaypointService } from "../core/model/waypoint.js";
import { ClusterState } from "./cluster.js";
import { JwtAuthenticator } from "./policy/jwt.js";
import { L7Authorizer } from "./policy/l7-authz.js";
import { TokenBucket } from "./policy/rate-limit.js";
import { compileRoutes, type RouteTable } from "./routes/match.js";
import { ClusterPool } from "./upstream/pool.js";
import type { Upstream } from "./upstream/upstream.js";

export interface CompiledService {
  svc: WaypointService;
  routes: RouteTable;
  ports: Map<number, WaypointProtocol>;
  bucket?: TokenBucket;
  authz: L7Authorizer;
  jwt: JwtAuthenticator;
}

export interface LiveCluster {
  state: ClusterState;
  pool: ClusterPool;
  /** Services whose resources name this cluster; dropped when none does. */
  users: Set<string>;
}

function addrKey(ip: string, port: number): string {
  return `${ip}|${port}`;
}

/** Compiles one service; throws RouteCompileError / Error naming the field on bad input. */
export function compileService(svc: WaypointService, previous?: CompiledService): CompiledService {
  const routes = compileRoutes(svc.routes);
  const sameLimit =
    previous?.bucket && JSON.stringify(previous.bucket.policy) === JSON.stringify(svc.rateLimit);
  return {
    svc,
    routes,
    ports: new Map(svc.ports.map((p) => [p.port, p.protocol])),
    ...(svc.rateLimit ? { bucket: sameLimit ? previous!.bucket! : new TokenBucket(svc.rateLimit) } : {}),
    authz: new L7Authorizer(svc.authz),
    jwt:
      previous && JSON.stringify(previous.svc.jwtRules) === JSON.stringify(svc.jwtRules)
        ? previous.jwt
        : new JwtAuthenticator(svc.jwtRules),
  };
}

export class WaypointState {
  readonly services = new Map<string, CompiledService>();
  private readonly byAddr = new Map<string, CompiledService>();
  private readonly byHost = new Map<string, CompiledService>();
  readonly clusters = new Map<string, LiveCluster>();

  private upstream!: Upstream;

  setUpstream(u: Upstream): void {
    this.upstream = u;
  }

  /** Adds or replaces a service. Throws without changing anything when it does not compile. */
  upsert(svc: WaypointService): void {
    const prev = this.services.get(svc.key);
    const compiled = compileService(svc, prev);
    this.generation++;
    this.identities = undefined;
    this.workloads = undefined;
    if (prev) this.unindex(prev);
    this.services.set(svc.key, compiled);
    this.index(compiled);
    for (const c of svc.clusters) this.upsertCluster(c, svc.key);
    this.gcClusters(svc.key, new Set(svc.clusters.map((c) => c.name)));
  }

  remove(key: string): void {
    const prev = this.services.get(key);
    if (!prev) return;
    this.generation++;
    this.identities = undefined;
    this.workloads = undefined;
    this.unindex(prev);
    this.services.delete(key);
    this.gcClusters(key, new Set());
  }

  private upsertCluster(c: WaypointCluster, user: string): void {
    const live = this.clusters.get(c.name);
    if (live) {
      live.state.update(c);
      live.pool.setPolicy(c.policy?.connectionPool);
      live.users.add(user);
    } else
      this.clusters.set(c.name, {
        state: new ClusterState(c),
        pool: new ClusterPool(this.upstream, { cluster: c.name }, c.policy?.connectionPool),
        users: new Set([user]),
      });
  }

  private gcClusters(user: string, keep: Set<string>): void {
    for (const [name, live] of this.clusters) {
      if (keep.has(name) || !live.users.has(user)) continue;
      live.users.delete(user);
      if (live.users.size === 0) {
        live.pool.close();
        this.clusters.delete(name);
      }
    }
  }

  private index(c: CompiledService): void {
    for (const vip of c.svc.vips) for (const p of c.svc.ports) this.byAddr.set(addrKey(vip, p.port), c);
    for (const h of hostAliases(c.svc)) this.byHost.set(h, c);
  }

  private unindex(c: CompiledService): void {
    for (const vip of c.svc.vips)
      for (const p of c.svc.ports)
        if (this.byAddr.get(addrKey(vip, p.port)) === c) this.byAddr.delete(addrKey(vip, p.port));
    for (const h of hostAliases(c.svc)) if (this.byHost.get(h) === c) this.byHost.delete(h);
  }

  byDestination(ip: string, port: number): CompiledService | undefined {
    return this.byAddr.get(addrKey(ip, port));
  }

  /** Host header (with or without port) → service, for traffic addressed by name. */
  byAuthority(authority: string | undefined): CompiledService | undefined {
    if (!authority) return undefined;
    const colon = authority.lastIndexOf(":");
    const host = colon > 0 && !authority.endsWith("]") ? authority.slice(0, colon) : authority;
    return this.byHost.get(host.toLowerCase());
  }

  private identities: Map<string, string> | undefined;

  /** The identity an endpoint must present (HBONE), from any cluster that lists it. */
  identityOf(ip: string, port: number): string | undefined {
    if (!this.identities) {
      this.identities = new Map();
      for (const svc of this.services.values())
        for (const c of svc.svc.clusters)
          for (const e of c.endpoints) if (e.identity) this.identities.set(addrKey(e.ip, e.port), e.identity);
    }
    return this.identities.get(addrKey(ip, port));
  }

  private workloads: Map<string, { workload: string; namespace: string }> | undefined;

  /** Moves on every applied change (what is cached from the configuration is stale once it moved). */
  generation = 0;

  /** The workload at an IP among the endpoints this waypoint knows (a caller's labels). */
  workloadAt(ip: string): { workload: string; namespace: string } | undefined {
    if (!this.workloads) {
      this.workloads = new Map();
      for (const svc of this.services.values())
        for (const c of svc.svc.clusters)
          for (const e of c.endpoints)
            if (e.workload && e.namespace)
              this.workloads.set(e.ip, { workload: e.workload, namespace: e.namespace });
    }
    return this.workloads.get(ip);
  }

  cluster(name: string): LiveCluster | undefined {
    return this.clusters.get(name);
  }

  close(): void {
    for (const c of this.clusters.values()) c.pool.close();
    this.clusters.clear();
  }
}

function hostAliases(s: WaypointService): string[] {
  return [s.hostname, `${s.name}.${s.namespace}`, `${s.name}.${s.namespace}.svc`].map((h) => h.toLowerCase());
}

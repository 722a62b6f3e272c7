// The ztunnel's one wiring point. It owns the mesh state (fed by xDS), the
// certificates of its node's pods, and for each enrolled pod the listeners
// inside that pod's network namespace (in-pod mode): 15001 outbound, 15006
// plaintext inbound, 15008 HBONE, 15053 DNS. Connections are carried by the
// proxies in ztunnel/proxy; this file only connects the parts.
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { HboneClient } from "../core/hbone/client.js";
import { type HboneListener, HboneServer } from "../core/hbone/server.js";
import type { IpPort } from "../core/hbone/types.js";
import { logger } from "../core/telemetry/logger.js";
import { enableProcessMetrics, gauge } from "../core/telemetry/metrics.js";
import { DeltaAdsClient } from "../core/xds/client.js";
import { ZtunnelAdmin } from "./admin.js";
import { CaClient } from "./certs/ca-client.js";
import { CertManager } from "./certs/manager.js";
import type { ZtunnelConfig } from "./config.js";
import { DnsProxy, parseResolvConf } from "./dns/proxy.js";
import { type EnrolledPod, NodeAgent, type PodContext } from "./node-agent/agent.js";
import { ZTUNNEL_MARK } from "./node-agent/capture.js";
import { connectInNetnsNow } from "./node-agent/native.js";
import type { CniWiring } from "./node-agent/zds-wiring.js";
import { PodsFileWatcher } from "./pods-file.js";
import { InboundProxy } from "./proxy/inbound.js";
import { memoryAdmission } from "./proxy/memory-pressure.js";
import { OutboundProxy } from "./proxy/outbound.js";
import { PlaintextInboundProxy } from "./proxy/plaintext-inbound.js";
import { MeshState, workloadIdentity } from "./state/mesh-state.js";
import { stateHandlers } from "./xds-handlers.js";

const log = logger("ztunnel");
const readyGauge = gauge("ambit_ztunnel_ready", "1 once xDS is synced and every enrolled pod is captured");

export class ZtunnelApp extends EventEmitter {
  readonly state = new MeshState();
  readonly certs: CertManager;
  readonly xds: DeltaAdsClient;
  readonly agent: NodeAgent;
  private readonly caClient: CaClient;
  private readonly hboneClient: HboneClient;
  private readonly hboneServer: HboneServer;
  private readonly outbound: OutboundProxy;
  private readonly inbound: InboundProxy;
  private readonly plaintext: PlaintextInboundProxy;
  private readonly dns: DnsProxy;
  private readonly podsWatcher?: PodsFileWatcher;
  /** Pods handed over by the ambit-cni plugin (--cni-socket), with their socket, installer and API. */
  private cni?: CniWiring;
  private readonly admin: ZtunnelAdmin;
  /** Pods of this node, as the node host lists them. */
  private nodePods: EnrolledPod[] = [];
  /** Pod IP → its namespace context, for connecting from inside a pod. */
  private readonly podsByIp = new Map<string, PodContext>();
  private readonly hboneListeners = new Map<string, HboneListener>();
  private xdsSynced = false;
  private reconciling: Promise<void> = Promise.resolve();
  private reconcileAgain = false;
  private ready = false;

  constructor(readonly cfg: ZtunnelConfig) {
    super();
    const rootPem = cfg.controllerRootFile ? readFileSync(cfg.controllerRootFile, "utf8") : undefined;
    const token = cfg.tokenFile ? async () => (await readFile(cfg.tokenFile!, "utf8")).trim() : undefined;
    this.caClient = new CaClient({
      address: cfg.caAddress,
      ...(token ? { token } : {}),
      ...(rootPem ? { tls: { rootsPem: [rootPem], serverName: "ambit-controller" } } : {}),
      ttlSeconds: cfg.certTtlSeconds,
    });
    this.certs = new CertManager({ client: this.caClient, trustDomain: cfg.trustDomain });

    // In-pod mode: tunnels start inside the source pod's namespace (so the
    // peer sees the pod's IP), marked so the pod's capture rules let them out.
    this.hboneClient = new HboneClient({
      certs: { get: (id) => this.certs.get(id) },
      connectRaw: (dst, src) =>
        this.connectFromPod(src.ip, dst) ?? net.connect({ host: dst.ip, port: dst.port }),
    });
    this.outbound = new OutboundProxy({ state: this.state, hbone: this.hboneClient });
    const connectLocal = (dst: IpPort, opts: { sourceIp: string }) =>
      this.connectToLocalApp(dst, opts.sourceIp);
    this.inbound = new InboundProxy({ state: this.state, node: cfg.nodeName, connectLocal });
    this.plaintext = new PlaintextInboundProxy({ state: this.state, node: cfg.nodeName, connectLocal });
    this.hboneServer = new HboneServer({ handler: this.inbound.handler });

    const upstreams = cfg.dnsUpstreams.length > 0 ? cfg.dnsUpstreams : resolvConfNameservers();
    this.dns = new DnsProxy({ source: this.state, clusterDomain: cfg.clusterDomain, upstreams });

    this.agent = new NodeAgent({
      onOutbound: (socket, ctx) => {
        this.podReady(ctx);
        const source = this.state.workloadByIp(ctx.pod.ip);
        if (!source) return socket.resetAndDestroy();
        this.outbound.handleOutbound(socket, {
          origDst: { ip: ctx.origDst.address, port: ctx.origDst.port },
          source,
        });
      },
      onInbound: (socket, ctx) => {
        this.podReady(ctx);
        const uid = this.state.workloadByIp(ctx.pod.ip)?.uid;
        this.plaintext.handlePlaintextInbound(socket, {
          origDst: { ip: ctx.origDst.address, port: ctx.origDst.port },
          ...(uid ? { podUid: uid } : {}),
        });
      },
      onHbone: (socket, ctx) => {
        this.podReady(ctx);
        const l = this.hboneListeners.get(ctx.podKey);
        if (l) l.accept(socket);
        else socket.destroy();
      },
      onDnsUdp: (msg, rinfo, socket, ctx) => {
        this.dns.handle(msg, podNamespace(ctx.podKey)).then(
          (res) => socket.send(res, rinfo.port, rinfo.address),
          () => {},
        );
      },
      onDnsTcp: (socket, ctx) => this.dns.serveTcpConnection(socket, podNamespace(ctx.podKey)),
      onPodListeners: (l) => this.podReady(l),
      onPodRemoved: (key) => {
        for (const [ip, ctx] of this.podsByIp) if (ctx.podKey === key) this.podsByIp.delete(ip);
        const l = this.hboneListeners.get(key);
        this.hboneListeners.delete(key);
        if (l) void this.hboneServer.detach(l);
      },
    });

    this.xds = new DeltaAdsClient({
      address: cfg.xdsAddress,
      ...(rootPem ? { credentials: grpc.credentials.createSsl(Buffer.from(rootPem)) } : {}),
      node: {
        id: `ztunnel~${cfg.nodeName}~ztunnel-${cfg.nodeName}.ambit-system~ambit-system.svc.cluster.local`,
        metadata: { NODE_NAME: cfg.nodeName },
      },
      handlers: stateHandlers(this.state, () => this.scheduleReconcile()),
    });
    if (cfg.podsFile) {
      this.podsWatcher = new PodsFileWatcher(
        cfg.podsFile,
        (pods) => {
          this.nodePods = pods;
          this.scheduleReconcile();
        },
        (e) => log.warn({ err: e.message }, "pods file unreadable; keeping the last good list"),
      );
    }
    this.admin = new ZtunnelAdmin(this);
  }

  isReady(): boolean {
    return this.ready;
  }

  hboneSessions(): number {
    return this.hboneServer.sessionCount;
  }

  activeConnections(): { outbound: number; inbound: number; plaintext: number } {
    return {
      outbound: this.outbound.activeConnections,
      inbound: this.inbound.activeConnections,
      plaintext: this.plaintext.activeConnections,
    };
  }

  async start(): Promise<void> {
    enableProcessMetrics();
    memoryAdmission.start(this.cfg.memoryLimitMb !== undefined ? { limitMb: this.cfg.memoryLimitMb } : {});
    this.certs.start();
    await this.admin.start();
    this.xds.start();
    await this.podsWatcher?.start();
    if (this.cfg.cniSocket) {
      // Loaded only in CNI mode: it brings the Kubernetes client (about 80 MB of RSS and seconds of start).
      const { CniWiring } = await import("./node-agent/zds-wiring.js");
      this.cni = new CniWiring({
        cfg: this.cfg,
        state: this.state,
        capturer: this.agent,
        onChange: () => this.scheduleReconcile(),
      });
    }
    // Before waiting for the controller: pod creation on this node must not wait for it.
    await this.cni?.start();
    await this.xds.ready();
    this.xdsSynced = true;
    this.scheduleReconcile();
    await this.reconciling;
    this.ready = true;
    readyGauge.set(1);
    log.info({ node: this.cfg.nodeName, pods: this.agent.pods().length }, "ztunnel ready");
    this.emit("ready");
  }

  /**
   * Capture exactly the node's pods that the controller says are enrolled.
   * Runs after xDS has synced (never un-captures on a half-known state), one
   * pass at a time; a change during a pass triggers one more.
   */
  private scheduleReconcile(): void {
    if (!this.xdsSynced) return;
    if (this.reconcileAgain) return;
    this.reconcileAgain = true;
    this.reconciling = this.reconciling.then(async () => {
      this.reconcileAgain = false;
      // Pods the CNI plugin never reported (there before ambit, or while no ztunnel ran): found by IP.
      await this.cni
        ?.scanForUnknownPods(this.nodePods)
        .catch((e: Error) => log.warn({ err: e.message }, "netns scan failed"));
      const nodePods = [...this.nodePods, ...(this.cni?.pods() ?? [])];
      const want = nodePods.filter((p) => {
        const w = this.state.workloadByIp(p.ip);
        // The model decides once it lists the pod; before that, the CNI ADD-time decision.
        const hint = (p as { enrolHint?: boolean }).enrolHint;
        const same = w !== undefined && (!("source" in p) || `${w.namespace}/${w.name}` === p.key);
        if (same) return w.node === this.cfg.nodeName && w.tunnel === "hbone";
        return hint === true;
      });
      // Certificates before listeners: a listener opened beside a
      // predecessor's (an upgrade, SO_REUSEPORT) takes connections at once,
      // and each would wait for the CSR (seconds under load), long enough for
      // the tunnels to time out. Bounded: a slow CA delays capture, never blocks it.
      await this.prefetchCerts(want, 10_000);
      const failures = await this.agent.reconcile(want);
      for (const f of failures) log.error({ pod: f.key, err: f.error.message }, "capture failed");
    });
  }

  private async prefetchCerts(pods: EnrolledPod[], boundMs: number): Promise<void> {
    const fetches: Promise<unknown>[] = [];
    for (const p of pods) {
      const w = this.state.workloadByIp(p.ip);
      if (w) fetches.push(this.certs.get(workloadIdentity(w)).catch(() => undefined));
    }
    if (fetches.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(fetches), new Promise((r) => (timer = setTimeout(r, boundMs)))]);
    clearTimeout(timer);
  }

  /**
   * Makes a pod's context known (for connecting from inside it, and its HBONE
   * listener). Idempotent; runs on the first connection too, because a
   * listener shares its port with a predecessor (SO_REUSEPORT) and so gets
   * connections as soon as it opens, before its enrolment completes.
   */
  private podReady(ctx: PodContext): void {
    if (this.podsByIp.get(ctx.pod.ip)?.netns !== ctx.netns) this.podsByIp.set(ctx.pod.ip, ctx);
    if (this.hboneListeners.has(ctx.podKey)) return;
    const w = this.state.workloadByIp(ctx.pod.ip);
    this.hboneListeners.set(
      ctx.podKey,
      this.hboneServer.attach({
        name: ctx.podKey,
        ...(w ? { podUid: w.uid } : {}),
        // Looked up per handshake: a pod enrolled at CNI ADD is not in the
        // model yet (its IP reaches the controller only after the ADD).
        cert: () => {
          const now = this.state.workloadByIp(ctx.pod.ip);
          return now
            ? this.certs.get(workloadIdentity(now))
            : Promise.reject(new Error(`no identity for ${ctx.podKey}`));
        },
      }),
    );
  }

  /** A socket to `dst` opened inside the pod whose IP is `srcIp`, or undefined when that pod is not ours. */
  private connectFromPod(srcIp: string, dst: IpPort): net.Socket | undefined {
    const ctx = this.podsByIp.get(srcIp);
    if (!ctx) return undefined;
    return connectInNetnsNow(ctx.netns, { host: dst.ip, port: dst.port, mark: ZTUNNEL_MARK });
  }

  /** Connects to a local pod's application from inside its namespace, as the caller's IP where it can. */
  private connectToLocalApp(dst: IpPort, sourceIp: string): net.Socket {
    const ctx = this.podsByIp.get(dst.ip);
    if (!ctx) return net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true, noDelay: true });
    const transparent = net.isIPv4(sourceIp) && sourceIp !== dst.ip;
    const s = connectInNetnsNow(ctx.netns, {
      host: dst.ip,
      port: dst.port,
      mark: ZTUNNEL_MARK,
      ...(transparent ? { transparent: true, localAddress: sourceIp } : {}),
    });
    s.setNoDelay(true);
    return s;
  }

  /** Drain: stop accepting, let open connections finish for up to graceMs, then stop. */
  async close(graceMs = this.cfg.drainSeconds * 1000): Promise<void> {
    this.ready = false;
    readyGauge.set(0);
    await this.admin.releaseReadiness();
    this.podsWatcher?.close();
    // No new pods from the CNI plugin (an upgrade's successor takes the socket over).
    const uninstalling = (await this.cni?.closeAndCheckUninstall()) ?? false;
    // Stop accepting first (queued connections migrate to a successor that
    // shares the ports), then GOAWAY the HBONE sessions and let what is open finish.
    await this.agent.stopAccepting();
    await this.hboneServer.drain(graceMs);
    await Promise.race([
      Promise.all([this.outbound.whenIdle(), this.inbound.whenIdle(), this.plaintext.whenIdle()]),
      new Promise((r) => setTimeout(r, graceMs).unref()),
    ]);
    this.inbound.abortAll();
    this.plaintext.abortAll();
    // Rules stay: a restarting ztunnel finds them; traffic fails closed meanwhile.
    // On uninstall (our DaemonSet deleted) they go: pods return to plain traffic.
    await this.agent.close({ removeCapture: uninstalling });
    await this.xds.close();
    this.certs.close();
    this.caClient.close();
    this.hboneClient.close();
    memoryAdmission.close();
    await this.admin.close();
  }
}

function podNamespace(podKey: string): string {
  return podKey.split("/")[0] ?? "default";
}

function resolvConfNameservers(): string[] {
  try {
    return parseResolvConf(readFileSync("/etc/resolv.conf", "utf8"));
  } catch {
    return [];
  }
}

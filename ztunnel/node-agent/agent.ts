// The node agent: for each enrolled pod on this node it opens ztunnel's
// listeners inside the pod's network namespace, installs the capture rules
// there, and hands every accepted connection to ztunnel's handlers together
// with the pod it belongs to. Un-enrolling removes both. After a ztunnel
// restart, `reconcile` with the node's enrolled pods restores everything
// (the rules are idempotent; while no listener exists the captured traffic
// is refused, i.e. capture fails closed).
//
// Order matters: listeners open before the rules that point at them, and the
// rules go before the listeners close.
import dgram from "node:dgram";
import net from "node:net";
import { AmbitError } from "../../core/errors/errors.js";
import { type Logger, logger } from "../../core/telemetry/logger.js";
import { counter, gauge } from "../../core/telemetry/metrics.js";
import { admitWithinFdLimit, refuseOnAcceptError } from "./accept-errors.js";
import {
  applyCapture,
  type CaptureOptions,
  type CapturePlan,
  PORTS,
  planCapture,
  removeCapture,
  ZTUNNEL_MARK,
} from "./capture.js";
import { listenInNetns, Netns, originalDst, type SockAddr } from "./native.js";

export interface EnrolledPod {
  /** Stable key, e.g. "ns/name". */
  key: string;
  /** `/var/run/netns/<name>` or `/proc/<pid>/ns/net`. */
  netnsPath: string;
  ip: string;
}

export interface PodContext {
  podKey: string;
  pod: EnrolledPod;
  /** Open handle on the pod's namespace, for `connectInNetns(ctx.netns, ...)`; valid until un-enrol. */
  netns: Netns;
}

export interface CapturedContext extends PodContext {
  /** Where the application meant to go (before the REDIRECT). */
  origDst: SockAddr;
}

export interface PodListeners extends PodContext {
  outbound: net.Server;
  inbound: net.Server;
  hbone: net.Server;
  dnsTcp?: net.Server;
  dnsUdp?: dgram.Socket;
}

export interface NodeAgentOptions {
  /** A connection a pod's application opened (captured on 15001). */
  onOutbound(socket: net.Socket, ctx: CapturedContext): void;
  /** Plain text arriving at the pod from outside the mesh (captured on 15006). */
  onInbound(socket: net.Socket, ctx: CapturedContext): void;
  /** A raw TCP connection on the pod's 15008; feed it to a TLS/HTTP2 server with `server.emit("connection", socket)`. */
  onHbone(socket: net.Socket, ctx: PodContext): void;
  /** DNS over UDP on 127.0.0.1:15053 in the pod; reply with `socket.send(answer, rinfo.port, rinfo.address)`. */
  onDnsUdp?(msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket, ctx: PodContext): void;
  /** DNS over TCP on 127.0.0.1:15053 in the pod. */
  onDnsTcp?(socket: net.Socket, ctx: PodContext): void;
  /** Called once a pod's listeners are open and its capture installed. */
  onPodListeners?(listeners: PodListeners): void;
  /** Called after a pod's capture and listeners are gone. */
  onPodRemoved?(key: string): void;
  /** Capture rule options; DNS capture defaults to on only when DNS handlers are given. */
  capture?: CaptureOptions;
  /** SO_REUSEPORT on every listener, so an upgraded ztunnel can listen alongside. Default true. */
  reusePort?: boolean;
  log?: Logger;
}

export interface NodeAgentCloseOptions {
  /** Also remove the capture rules (default false: a restarting ztunnel keeps them, failing closed). */
  removeCapture?: boolean;
}

const loopsRefused = () =>
  counter(
    "ambit_node_agent_refused_total",
    "Captured connections refused because they would loop into ztunnel",
    ["direction"],
  );
const enrolledGauge = () =>
  gauge("ambit_node_agent_enrolled_pods", "Pods whose traffic this node agent captures");

/** Ports of ztunnel's own listeners inside a pod; a connection aimed at them directly must not be proxied to them again. */
const OWN_PORTS = new Set<number>([PORTS.outbound, PORTS.inbound, PORTS.hbone, PORTS.dns]);

interface Entry {
  listeners: PodListeners;
}

export class NodeAgent {
  private readonly entries = new Map<string, Entry>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly plan: CapturePlan;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: NodeAgentOptions) {
    this.log = opts.log ?? logger("ztunnel.node-agent");
    const dns = opts.capture?.dns ?? Boolean(opts.onDnsUdp || opts.onDnsTcp);
    this.plan = planCapture({ ...opts.capture, dns });
  }

  /** The pods currently enrolled. */
  pods(): EnrolledPod[] {
    return [...this.entries.values()].map((e) => e.listeners.pod);
  }

  get(key: string): PodListeners | undefined {
    return this.entries.get(key)?.listeners;
  }

  /**
   * Captures the pod's traffic. Idempotent: enrolling an enrolled pod
   * re-applies its rules; a changed namespace or IP re-enrols it.
   */
  enroll(pod: EnrolledPod): Promise<PodListeners> {
    if (this.closed) return Promise.reject(new AmbitError("NETNS_SYSCALL", "node agent is closed"));
    return this.serialize(pod.key, async () => {
      const existing = this.entries.get(pod.key);
      if (
        existing &&
        existing.listeners.pod.netnsPath === pod.netnsPath &&
        existing.listeners.pod.ip === pod.ip
      ) {
        await applyCapture(pod.netnsPath, this.plan);
        return existing.listeners;
      }
      if (existing) await this.remove(pod.key, true);
      const listeners = await this.open(pod);
      try {
        await applyCapture(pod.netnsPath, this.plan);
      } catch (err) {
        await closeListeners(listeners);
        throw err;
      }
      this.entries.set(pod.key, { listeners });
      enrolledGauge().set(this.entries.size);
      this.log.info({ pod: pod.key, ip: pod.ip, netns: pod.netnsPath }, "pod enrolled");
      this.opts.onPodListeners?.(listeners);
      return listeners;
    });
  }

  /** Stops capturing the pod: removes its rules, then closes its listeners. Unknown keys are fine. */
  unenroll(key: string): Promise<void> {
    return this.serialize(key, () => this.remove(key, true));
  }

  /**
   * Makes the enrolled set equal to `pods`: enrols the missing ones (and
   * re-applies rules of the present ones), un-enrols the others. Used at
   * start-up after a restart, and whenever the node's pod list changes.
   * Resolves once every pod was tried; failures are logged and returned.
   */
  async reconcile(pods: EnrolledPod[]): Promise<{ key: string; error: Error }[]> {
    const want = new Map(pods.map((p) => [p.key, p]));
    const failures: { key: string; error: Error }[] = [];
    const jobs: Promise<unknown>[] = [];
    for (const key of this.entries.keys()) {
      if (!want.has(key))
        jobs.push(this.unenroll(key).catch((error: Error) => failures.push({ key, error })));
    }
    for (const pod of want.values()) {
      jobs.push(this.enroll(pod).catch((error: Error) => failures.push({ key: pod.key, error })));
    }
    await Promise.all(jobs);
    for (const f of failures) this.log.error({ pod: f.key, err: f.error.message }, "reconcile: pod failed");
    return failures;
  }

  /**
   * Closes every listening socket but keeps the pods' namespaces open (the
   * handlers still connect from inside them while draining). With
   * SO_REUSEPORT and tcp_migrate_req, connections queued on these sockets
   * move to a successor's listeners instead of being reset.
   */
  async stopAccepting(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queues.values()].map((q) => q.catch(() => undefined)));
    await Promise.all(
      [...this.entries.values()].map((e) => closeListeners(e.listeners, { keepNetns: true })),
    );
  }

  /** Closes every listener (connections already accepted are the handlers' to drain). */
  async close(opts: NodeAgentCloseOptions = {}): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queues.values()].map((q) => q.catch(() => undefined)));
    await Promise.all([...this.entries.keys()].map((key) => this.remove(key, opts.removeCapture ?? false)));
  }

  // ---------- internals ----------

  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.queues.set(key, next);
    const cleanup = () => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    };
    next.then(cleanup, cleanup);
    return next;
  }

  private async remove(key: string, uncapture: boolean): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    enrolledGauge().set(this.entries.size);
    const { pod } = entry.listeners;
    if (uncapture) {
      await removeCapture(pod.netnsPath, this.plan).catch((err: Error) => {
        // The namespace may be gone already (pod deleted): nothing left to remove.
        this.log.debug({ pod: key, err: err.message }, "remove capture");
      });
    }
    await closeListeners(entry.listeners);
    this.log.info({ pod: key, uncapture }, "pod un-enrolled");
    this.opts.onPodRemoved?.(key);
  }

  private async open(pod: EnrolledPod): Promise<PodListeners> {
    const netns = Netns.open(pod.netnsPath);
    const ctx: PodContext = { podKey: pod.key, pod, netns };
    const reusePort = this.opts.reusePort ?? true;
    const opened: (net.Server | dgram.Socket)[] = [];
    try {
      const outbound = await serveFd(
        listenInNetns(netns, { host: "127.0.0.1", port: PORTS.outbound, reusePort }),
        (s) => this.onCaptured(s, ctx, "outbound"),
        "outbound",
      );
      opened.push(outbound);
      const inbound = await serveFd(
        listenInNetns(netns, { host: "0.0.0.0", port: PORTS.inbound, reusePort }),
        (s) => this.onCaptured(s, ctx, "inbound"),
        "inbound",
      );
      opened.push(inbound);
      const hbone = await serveFd(
        listenInNetns(netns, { host: "0.0.0.0", port: PORTS.hbone, reusePort }),
        (s) => this.opts.onHbone(s, ctx),
        "hbone",
      );
      opened.push(hbone);
      const listeners: PodListeners = { ...ctx, outbound, inbound, hbone };
      const onDnsTcp = this.opts.onDnsTcp;
      if (onDnsTcp) {
        listeners.dnsTcp = await serveFd(
          listenInNetns(netns, { host: "127.0.0.1", port: PORTS.dns, reusePort }),
          (s) => onDnsTcp(s, ctx),
          "dns",
        );
        opened.push(listeners.dnsTcp);
      }
      const onDnsUdp = this.opts.onDnsUdp;
      if (onDnsUdp) {
        const fd = listenInNetns(netns, { host: "127.0.0.1", port: PORTS.dns, protocol: "udp", reusePort });
        const udp = dgram.createSocket("udp4");
        await new Promise<void>((resolve, reject) => {
          udp.once("error", reject);
          udp.bind({ fd }, () => {
            udp.off("error", reject);
            resolve();
          });
        });
        udp.on("message", (msg, rinfo) => onDnsUdp(msg, rinfo, udp, ctx));
        udp.on("error", (err) => this.log.warn({ pod: pod.key, err: err.message }, "dns udp socket error"));
        listeners.dnsUdp = udp;
        opened.push(udp);
      }
      return listeners;
    } catch (err) {
      await Promise.all(opened.map(closeOne));
      netns.close();
      throw err;
    }
  }

  private onCaptured(socket: net.Socket, ctx: PodContext, direction: "outbound" | "inbound"): void {
    let origDst: SockAddr;
    try {
      origDst = originalDst(socket);
    } catch {
      socket.destroy();
      loopsRefused().inc({ direction });
      return;
    }
    // Aimed straight at one of ztunnel's listeners (not redirected): proxying
    // it would connect back to ourselves, forever.
    const toSelf =
      direction === "outbound"
        ? origDst.address === ctx.pod.ip || origDst.address.startsWith("127.")
        : OWN_PORTS.has(origDst.port);
    if (toSelf) {
      socket.destroy();
      loopsRefused().inc({ direction });
      return;
    }
    const handler = direction === "outbound" ? this.opts.onOutbound : this.opts.onInbound;
    handler(socket, { ...ctx, origDst });
  }
}

/** The mark ztunnel puts on its own sockets inside pods (pass as `mark` to connectInNetns). */
export const OWN_SOCKET_MARK = ZTUNNEL_MARK;

function serveFd(fd: number, onConnection: (s: net.Socket) => void, listener = "pod"): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: false }, admitWithinFdLimit(listener, onConnection));
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      refuseOnAcceptError(server, listener);
      resolve(server);
    });
  });
}

function closeOne(s: net.Server | dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s instanceof net.Server) {
      if (!s.listening) resolve();
      else s.close(() => resolve());
    } else {
      try {
        s.close(() => resolve());
      } catch {
        resolve();
      }
    }
  });
}

async function closeListeners(l: PodListeners, opts: { keepNetns?: boolean } = {}): Promise<void> {
  const all: (net.Server | dgram.Socket)[] = [l.outbound, l.inbound, l.hbone];
  if (l.dnsTcp) all.push(l.dnsTcp);
  if (l.dnsUdp) all.push(l.dnsUdp);
  // net.Server#close waits for open connections to end; the handlers own
  // those, so resolve once the listening sockets are closed.
  await Promise.all(
    all.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s instanceof net.Server) {
            s.close();
            resolve();
          } else closeOne(s).then(resolve);
        }),
    ),
  );
  if (!opts.keepNetns) l.netns.close();
}

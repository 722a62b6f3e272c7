// Service names for every pod of a local mesh, enrolled or not: a DNS server
// per node (port 53 inside the node's namespace, served from the
// supervisor's process) answering Service names from the controller's model,
// and forwarding every other name to this machine's resolvers (its sockets
// live in the host's namespace, so they reach them). Each pod's DNS is sent
// to its node's address by network.ts's planPodDns; an enrolled pod's capture
// (inserted before it by ztunnel) sends DNS to ztunnel's own proxy instead.
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import type { MeshService, MeshWorkload } from "../core/model/types.js";
import { DnsProxy, parseResolvConf } from "../ztunnel/dns/proxy.js";
import { listenInNetns } from "../ztunnel/node-agent/native.js";
import type { NodeLayout } from "./network.js";
import { adminJson } from "./supervisor-logs.js";

const MODEL_MAX_AGE_MS = 1000;

export interface LocalDnsOptions {
  nodes: NodeLayout[];
  controllerSocket: string;
  /** Namespace of the pod with this IP (for search order), if any. */
  podNamespace(ip: string): string | undefined;
  upstreams?: string[];
}

export class LocalDns {
  private readonly proxy: DnsProxy;
  private services = new Map<string, MeshService>();
  private workloads: MeshWorkload[] = [];
  private fetchedAt = 0;
  private fetching: Promise<void> | undefined;
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];

  constructor(private readonly opts: LocalDnsOptions) {
    let upstreams = opts.upstreams;
    if (!upstreams) {
      try {
        upstreams = parseResolvConf(fs.readFileSync("/etc/resolv.conf", "utf8"));
      } catch {
        upstreams = [];
      }
    }
    this.proxy = new DnsProxy({
      upstreams,
      source: {
        serviceByHostname: (h) => this.services.get(h),
        endpointIps: (s) => this.workloads.filter((w) => w.services[s.key]).flatMap((w) => w.ips),
      },
    });
  }

  /** The model as of at most a second ago (fetched on demand: no timer runs while nobody asks). */
  private refresh(): Promise<void> {
    if (Date.now() - this.fetchedAt < MODEL_MAX_AGE_MS) return Promise.resolve();
    this.fetching ??= adminJson<{ workloads: MeshWorkload[]; services: MeshService[] }>(
      this.opts.controllerSocket,
      "/debug/model",
      "the controller",
    )
      .then((m) => {
        this.services = new Map(m.services.map((s) => [s.hostname, s]));
        this.workloads = m.workloads;
        this.fetchedAt = Date.now();
      })
      .catch(() => undefined) // the controller is restarting: answer from what we had
      .finally(() => {
        this.fetching = undefined;
      });
    return this.fetching;
  }

  private namespaceOf(address: string): string {
    return this.opts.podNamespace(address.replace(/^::ffff:/, "")) ?? "default";
  }

  async start(): Promise<void> {
    for (const node of this.opts.nodes) {
      const udp = dgram.createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind({ fd: listenInNetns(node.netnsPath, { port: 53, protocol: "udp" }) }, () => resolve());
      });
      udp.on("error", () => undefined);
      udp.on("message", (msg, rinfo) => {
        void this.refresh()
          .then(() => this.proxy.handle(msg, this.namespaceOf(rinfo.address)))
          .then((res) => udp.send(res, rinfo.port, rinfo.address))
          .catch(() => undefined);
      });
      this.udp.push(udp);
      const tcp = net.createServer((conn) => {
        conn.on("error", () => undefined);
        conn.pause();
        void this.refresh().then(() => {
          this.proxy.serveTcpConnection(conn, this.namespaceOf(conn.remoteAddress ?? ""));
          conn.resume();
        });
      });
      await new Promise<void>((resolve) =>
        tcp.listen({ fd: listenInNetns(node.netnsPath, { port: 53 }) }, resolve),
      );
      this.tcp.push(tcp);
    }
  }

  async close(): Promise<void> {
    for (const u of this.udp) u.close();
    await Promise.all(this.tcp.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

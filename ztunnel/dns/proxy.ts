// DNS proxy on 15053 for enrolled pods: answers Service names from the mesh
// state (so a pod resolves `server`, `server.demo`, `server.demo.svc` and the
// full name without kube-dns), and forwards every other question to the
// node's resolver. One proxy per ztunnel; each pod's listeners call it with
// the pod's namespace, which decides the search order.
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import net from "node:net";
import dnsPacket, { type Answer, type Packet, type Question } from "dns-packet";
import type { MeshService } from "../../core/model/types.js";
import { counter } from "../../core/telemetry/metrics.js";

export interface DnsServiceSource {
  /** The Service with this fully qualified hostname (`name.ns.svc.<domain>`). */
  serviceByHostname(hostname: string): MeshService | undefined;
  /** IPs of the workloads behind a headless Service. */
  endpointIps(service: MeshService): string[];
}

export interface DnsProxyOptions {
  source: DnsServiceSource;
  clusterDomain?: string;
  /** Resolvers for names outside the mesh, `ip` or `ip:port`. */
  upstreams: string[];
  ttlSeconds?: number;
  forwardTimeoutMs?: number;
}

const queries = counter("ambit_dns_queries_total", "DNS questions answered by the ztunnel DNS proxy", [
  "result",
]);

/** The names a question may mean, in the order a pod of `podNamespace` would search them. */
export function candidateHostnames(qname: string, podNamespace: string, clusterDomain: string): string[] {
  const q = qname.toLowerCase().replace(/\.$/, "");
  const svcSuffix = `.svc.${clusterDomain}`;
  if (q.endsWith(svcSuffix)) return [q];
  const dots = q.split(".").length - 1;
  if (dots === 0) return [`${q}.${podNamespace}${svcSuffix}`];
  if (q.endsWith(".svc")) return [`${q}.${clusterDomain}`];
  if (dots === 1) return [`${q}${svcSuffix}`];
  return [];
}

export class DnsProxy {
  private readonly domain: string;
  private readonly ttl: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: DnsProxyOptions) {
    this.domain = opts.clusterDomain ?? "cluster.local";
    this.ttl = opts.ttlSeconds ?? 30;
    this.timeoutMs = opts.forwardTimeoutMs ?? 2000;
  }

  /** Answers from the mesh, or undefined when the name is not a mesh Service. */
  answerFromMesh(question: Question, podNamespace: string): Answer[] | undefined {
    if (question.type !== "A" && question.type !== "AAAA") {
      // Known Service name, other record type: an empty answer, not a forward.
      return this.findService(question.name, podNamespace) ? [] : undefined;
    }
    const svc = this.findService(question.name, podNamespace);
    if (!svc) return undefined;
    const ips = svc.vips.length > 0 ? svc.vips : this.opts.source.endpointIps(svc);
    const family = question.type === "A" ? 4 : 6;
    return ips
      .filter((ip) => net.isIP(ip) === family)
      .map(
        (ip) =>
          ({ name: question.name, type: question.type, class: "IN", ttl: this.ttl, data: ip }) as Answer,
      );
  }

  private findService(qname: string, podNamespace: string): MeshService | undefined {
    for (const h of candidateHostnames(qname, podNamespace, this.domain)) {
      const s = this.opts.source.serviceByHostname(h);
      if (s) return s;
    }
    return undefined;
  }

  /** Handles one wire-format query; resolves to the wire-format response. */
  async handle(query: Buffer, podNamespace: string): Promise<Buffer> {
    let packet: Packet;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      queries.inc({ result: "malformed" });
      return formErr(query);
    }
    const question = packet.questions?.[0];
    if (question) {
      const answers = this.answerFromMesh(question, podNamespace);
      if (answers) {
        queries.inc({ result: "mesh" });
        return dnsPacket.encode({
          type: "response",
          id: packet.id,
          flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
          questions: packet.questions,
          answers,
        });
      }
    }
    try {
      const res = await this.forward(query);
      queries.inc({ result: "forwarded" });
      return res;
    } catch {
      queries.inc({ result: "servfail" });
      return dnsPacket.encode({
        type: "response",
        id: packet.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2 /* SERVFAIL */,
        questions: packet.questions,
      });
    }
  }

  /** Asks the node's resolvers, first answer wins. */
  private forward(query: Buffer): Promise<Buffer> {
    const upstream = this.opts.upstreams[0];
    if (!upstream) return Promise.reject(new Error("no upstream resolver"));
    const [host, port] = splitHostPort(upstream);
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
      const timer = setTimeout(() => done(new Error("upstream timeout")), this.timeoutMs);
      const done = (err: Error | null, msg?: Buffer) => {
        clearTimeout(timer);
        sock.close();
        if (err) reject(err);
        else resolve(msg!);
      };
      sock.on("message", (msg) => done(null, msg));
      sock.on("error", (e) => done(e));
      sock.send(query, port, host);
    });
  }

  /** Serves UDP queries arriving on a socket (already bound, e.g. inside a pod's namespace). */
  serveUdp(sock: dgram.Socket, podNamespace: string): void {
    sock.on("message", (msg, rinfo) => {
      // A query that fails is dropped (the client retries); so is an answer whose
      // socket closed meanwhile (pod un-enrolled): send() would throw, unhandled.
      this.handle(msg, podNamespace)
        .then((res) => sock.send(res, rinfo.port, rinfo.address))
        .catch(() => {});
    });
  }

  /** Serves DNS over TCP (2-byte length prefix) on a listening server. */
  serveTcp(server: net.Server, podNamespace: string): void {
    server.on("connection", (conn) => this.serveTcpConnection(conn, podNamespace));
  }

  /** Serves one DNS-over-TCP connection (2-byte length prefix per message). */
  serveTcpConnection(conn: net.Socket, podNamespace: string): void {
    {
      let buf = Buffer.alloc(0);
      conn.on("data", (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          this.handle(Buffer.from(msg), podNamespace).then(
            (res) => {
              const out = Buffer.alloc(2 + res.length);
              out.writeUInt16BE(res.length, 0);
              res.copy(out, 2);
              if (!conn.destroyed) conn.write(out);
            },
            () => conn.destroy(),
          );
        }
      });
      conn.on("error", () => {});
    }
  }
}

function splitHostPort(s: string): [string, number] {
  if (net.isIP(s)) return [s, 53];
  const i = s.lastIndexOf(":");
  return [s.slice(0, i).replace(/^\[|\]$/g, ""), Number(s.slice(i + 1))];
}

/** A FORMERR response for a query we could not parse (id kept when readable). */
function formErr(query: Buffer): Buffer {
  const id = query.length >= 2 ? query.readUInt16BE(0) : 0;
  return dnsPacket.encode({ type: "response", id, flags: 1 /* FORMERR */ });
}

/** Nameservers of a resolv.conf text (the node's resolvers). */
export function parseResolvConf(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p[0] === "nameserver" && p[1])
    .map((p) => p[1]!);
}

export type { AddressInfo };

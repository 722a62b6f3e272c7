// The production upstream: an HBONE CONNECT stream to the endpoint's pod IP
// on 15008 (served by that node's ztunnel, in the pod's namespace), with the
// waypoint's own certificate, expecting the endpoint workload's identity.
// Endpoints without an identity (not enrolled) get plain TCP.
import net from "node:net";
import type { Duplex } from "node:stream";
import type { HboneClient } from "../../core/hbone/client.js";
import { formatAuthority, HBONE_PORT } from "../../core/hbone/types.js";
import { TcpUpstream, type Upstream, type UpstreamEndpoint, type UpstreamMeta } from "./upstream.js";

export interface HboneUpstreamOptions {
  client: HboneClient;
  /** The waypoint's SPIFFE id and pod IP. */
  identity: string;
  ip: string;
  /** Identity of the workload at an IP, from the current configuration. */
  identityOf: (ip: string, port: number) => string | undefined;
  /** Where the peer's HBONE listener is (15008; tests use others). */
  hbonePort?: number;
}

export class HboneUpstream implements Upstream {
  private readonly plain = new TcpUpstream();
  constructor(private readonly opts: HboneUpstreamOptions) {}

  async connect(ep: UpstreamEndpoint, _meta: UpstreamMeta): Promise<Duplex> {
    const dstIdentity = this.opts.identityOf(ep.ip, ep.port);
    if (!dstIdentity) return this.plain.connect(ep);
    return this.opts.client.connect({
      srcIdentity: this.opts.identity,
      srcIp: this.opts.ip,
      dstIdentity,
      dstIp: ep.ip,
      dstPort: this.opts.hbonePort ?? HBONE_PORT,
      authority: formatAuthority({ ip: ep.ip, port: ep.port }),
    });
  }
}

export function isIp(s: string): boolean {
  return net.isIP(s) !== 0;
}

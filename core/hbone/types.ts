// The narrow interfaces HBONE consumes. Certificates come from whoever owns
// identity (the ztunnel certificate manager); HBONE only needs "the current
// bundle of identity X".
import { isIPv6, type Socket } from "node:net";
import type { SecureContext } from "node:tls";

/** A workload certificate with its key, chain and the mesh roots (same shape as core/identity's). */
export interface CertBundle {
  /** spiffe://td/ns/X/sa/Y */
  identity: string;
  keyPem: string;
  /** Leaf first, then intermediates. */
  certChainPem: string[];
  /** Trust anchors of the mesh (the peer must chain to one of these). */
  rootsPem: string[];
  notAfter: Date;
  /** A context built once from key, chain and roots (the certificate manager provides it); saves re-parsing per session. */
  secureContext?: SecureContext;
}

export interface CertSource {
  /** The current, unexpired bundle for a SPIFFE identity (fetched or rotated on demand). */
  get(identity: string): Promise<CertBundle>;
}

export interface IpPort {
  ip: string;
  port: number;
}

/** Opens the raw TCP connection under TLS; the capture layer injects one that opens it inside a pod's netns, marked. */
export type ConnectRaw = (dst: IpPort, src: { ip: string }) => Socket;

/** HTTP/2 receive windows, as Istio's ztunnel: per stream, and per session (bounding what one session buffers). */
export const DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024;
export const DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024;
/** Larger DATA frames than the 16 KiB default: fewer frame headers, callbacks and TLS records per byte. */
export const MAX_FRAME_SIZE = 256 * 1024;

/** HBONE's well-known port. */
export const HBONE_PORT = 15008;

/** "ip:port", with brackets for IPv6 (the form of :authority). */
export function formatAuthority(dst: IpPort): string {
  return dst.ip.includes(":") ? `[${dst.ip}]:${dst.port}` : `${dst.ip}:${dst.port}`;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Parses "ip:port" / "[v6]:port" strictly; undefined for anything else (hostnames included). */
export function parseAuthority(authority: string | undefined): IpPort | undefined {
  if (!authority || authority.length > 64) return undefined;
  let ip: string;
  let portStr: string;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0 || authority[end + 1] !== ":") return undefined;
    ip = authority.slice(1, end);
    portStr = authority.slice(end + 2);
    // Only a real IPv6 address ("[:]:80" must not reach the handler), and no zone id.
    if (!isIPv6(ip) || ip.includes("%")) return undefined;
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon < 0) return undefined;
    ip = authority.slice(0, colon);
    portStr = authority.slice(colon + 1);
    if (!IPV4.test(ip)) return undefined;
  }
  if (!/^\d{1,5}$/.test(portStr)) return undefined;
  const port = Number(portStr);
  if (port < 1 || port > 65535) return undefined;
  return { ip, port };
}

/** Node reports IPv4 peers on dual-stack sockets as ::ffff:a.b.c.d. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return "";
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

/**
 * The SPIFFE id in a peer certificate's URI SAN (Node's `subjectaltname`
 * string, e.g. `URI:spiffe://td/ns/a/sa/b, DNS:x`). Exactly one spiffe URI is
 * accepted; none or several yield undefined.
 */
export function spiffeFromSubjectAltName(san: string | undefined): string | undefined {
  if (!san) return undefined;
  let found: string | undefined;
  for (const part of san.split(", ")) {
    if (!part.startsWith("URI:spiffe://")) continue;
    if (found) return undefined;
    found = part.slice(4);
  }
  if (!found || !/^spiffe:\/\/[a-z0-9._-]+\/ns\/[A-Za-z0-9._-]+\/sa\/[A-Za-z0-9._-]+$/.test(found))
    return undefined;
  return found;
}

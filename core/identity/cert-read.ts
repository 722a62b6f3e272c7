// Reading certificates with node:crypto alone (X509Certificate is native and
// cheap): chains, SPIFFE identities, validity. Apart from x509.ts so that a
// process that only reads certificates (ztunnel) never loads @peculiar/x509
// and its ASN.1 schemas (about 4.5 MB of RSS); x509.ts re-exports all of it.
import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { AmbitError } from "../errors/errors.js";
import { tryParseSpiffeId } from "./spiffe.js";

export { X509Certificate };

/** The PEM blocks of a bundle, each re-wrapped at 64 columns (as keys.ts's splitPem, without its library). */
function certificateBlocks(pem: string): string[] {
  const out: string[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    const b64 = (m[1] ?? "").replace(/\s+/g, "");
    out.push(
      `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g)?.join("\n") ?? ""}\n-----END CERTIFICATE-----\n`,
    );
  }
  return out;
}

/** Parses PEM certificates (a bundle string or a list of PEMs) into node X509Certificates. */
export function parseChain(pem: string | readonly string[]): X509Certificate[] {
  const blocks = typeof pem === "string" ? certificateBlocks(pem) : pem.flatMap((p) => certificateBlocks(p));
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new AmbitError(
        "INVALID_FIELD",
        `certificate chain: field [${i}]: not a certificate (${(e as Error).message})`,
      );
    }
  });
}

/**
 * The entries of node's subjectAltName string (`URI:x, DNS:y, IP Address:z`).
 * Node JSON-quotes values containing separators or quotes, so a forged value
 * like `"a, URI:spiffe://..."` must be read as one quoted token, never split.
 */
export function subjectAltNames(san: string | undefined): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  if (!san) return out;
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(":", i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(san.slice(j, k + 1)) as string;
      } catch {
        return out; // unparseable: stop, callers then find no identity
      }
      j = k + 1;
    } else {
      const comma = san.indexOf(", ", j);
      value = comma < 0 ? san.slice(j) : san.slice(j, comma);
      j = comma < 0 ? san.length : comma;
    }
    out.push({ type, value });
    if (san.startsWith(", ", j)) j += 2;
    else if (j < san.length) return out;
    i = j;
  }
  return out;
}

/**
 * The SPIFFE id in a certificate's URI SAN, or undefined when there is none,
 * more than one URI SAN, or it is not strictly `spiffe://td/ns/X/sa/Y`.
 * Takes what the TLS stack hands over: tls.PeerCertificate (socket.getPeerCertificate()),
 * node X509Certificate (socket.getPeerX509Certificate()), or a PEM.
 */
export function spiffeIdOf(
  cert: PeerCertificate | X509Certificate | string | undefined | null,
): string | undefined {
  if (!cert) return undefined;
  let san: string | undefined;
  if (typeof cert === "string") san = new X509Certificate(cert).subjectAltName;
  else if (cert instanceof X509Certificate) san = cert.subjectAltName;
  else san = cert.subjectaltname;
  if (!san?.includes("URI:")) return undefined;
  const uris = subjectAltNames(san).filter((e) => e.type === "URI");
  if (uris.length !== 1) return undefined;
  const uri = (uris[0] as { value: string }).value;
  return tryParseSpiffeId(uri) ? uri : undefined;
}

/**
 * The peer's SPIFFE id when it belongs to `trustDomain`, else undefined: what
 * the HBONE server feeds to authorization (a chain to the mesh root is checked
 * by TLS; the trust domain is checked here).
 */
export function meshPeerIdentity(
  cert: PeerCertificate | X509Certificate | string | undefined | null,
  trustDomain: string,
): string | undefined {
  const uri = spiffeIdOf(cert);
  if (!uri) return undefined;
  const prefix = `spiffe://${trustDomain}/`;
  return uri.startsWith(prefix) ? uri : undefined;
}

export function notAfter(cert: X509Certificate | PeerCertificate | string): Date {
  if (typeof cert === "string") return new Date(new X509Certificate(cert).validTo);
  if (cert instanceof X509Certificate) return new Date(cert.validTo);
  return new Date(cert.valid_to);
}

export function notBefore(cert: X509Certificate | PeerCertificate | string): Date {
  if (typeof cert === "string") return new Date(new X509Certificate(cert).validFrom);
  if (cert instanceof X509Certificate) return new Date(cert.validFrom);
  return new Date(cert.valid_from);
}

export function isExpired(cert: X509Certificate | PeerCertificate | string, at: Date = new Date()): boolean {
  return notAfter(cert).getTime() <= at.getTime();
}

export function secondsUntilExpiry(
  cert: X509Certificate | PeerCertificate | string,
  at: Date = new Date(),
): number {
  return (notAfter(cert).getTime() - at.getTime()) / 1000;
}

export type ChainVerdict = { ok: true; root: X509Certificate } | { ok: false; reason: string };

const MAX_CHAIN = 8;

function validAt(c: X509Certificate, at: number): string | undefined {
  if (new Date(c.validFrom).getTime() > at) return `not valid before ${c.validFrom}`;
  if (new Date(c.validTo).getTime() <= at) return `expired at ${c.validTo}`;
  return undefined;
}

/**
 * Checks that chain (leaf first, then intermediates, optionally the root) is
 * signed link by link up to one of roots, every certificate valid at `at`
 * and every issuer a CA.
 */
export function verifyChain(
  chainIn: readonly (X509Certificate | string)[],
  rootsIn: readonly (X509Certificate | string)[],
  at: Date = new Date(),
): ChainVerdict {
  const chain = chainIn.map((c) => (typeof c === "string" ? new X509Certificate(c) : c));
  const roots = rootsIn.map((c) => (typeof c === "string" ? new X509Certificate(c) : c));
  if (chain.length === 0) return { ok: false, reason: "empty chain" };
  if (roots.length === 0) return { ok: false, reason: "no trusted roots" };
  const rootPrints = new Set(roots.map((r) => r.fingerprint256));
  // A chain may carry the root last (istiod's convention); it is trusted only via `roots`.
  while (chain.length > 1 && rootPrints.has((chain[chain.length - 1] as X509Certificate).fingerprint256))
    chain.pop();
  if (chain.length > MAX_CHAIN) return { ok: false, reason: `chain longer than ${MAX_CHAIN}` };
  const now = at.getTime();
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i] as X509Certificate;
    const bad = validAt(c, now);
    if (bad)
      return { ok: false, reason: `certificate [${i}] ${c.subject || c.subjectAltName || ""}: ${bad}` };
    const issuer = chain[i + 1];
    if (!issuer) break;
    if (!issuer.ca) return { ok: false, reason: `certificate [${i + 1}] is not a CA` };
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) {
      return { ok: false, reason: `certificate [${i}] is not signed by certificate [${i + 1}]` };
    }
  }
  const last = chain[chain.length - 1] as X509Certificate;
  if (rootPrints.has(last.fingerprint256)) {
    const root = roots.find((r) => r.fingerprint256 === last.fingerprint256) as X509Certificate;
    return { ok: true, root };
  }
  for (const r of roots) {
    if (!r.ca) continue;
    if (last.checkIssued(r) && last.verify(r.publicKey)) {
      const bad = validAt(r, now);
      if (bad) return { ok: false, reason: `root ${r.subject}: ${bad}` };
      return { ok: true, root: r };
    }
  }
  return { ok: false, reason: "chain does not lead to a trusted root" };
}

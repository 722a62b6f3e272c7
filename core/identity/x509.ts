// Certificates and CSRs of mesh identities. Creation goes through
// @peculiar/x509 (node has no certificate builder); everything read on a hot
// path (peer identity per handshake, chain checks, expiry) uses node:crypto's
// X509Certificate, which is native and cheap.
import { createPublicKey, X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { AmbitError } from "../errors/errors.js";
import { type KeyPair, P256, splitPem } from "./keys.js";
import { x509 } from "./peculiar.js";
import { type Identity, identityUri, tryParseSpiffeId } from "./spiffe.js";

export { X509Certificate };

/** A PKCS#10 CSR (PEM) for one SPIFFE identity: URI SAN only, empty subject, as Istio's ztunnel sends. */
export async function createCsr(identity: Identity | string, keys: KeyPair): Promise<string> {
  const uri = identityUri(identity);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "",
    keys: keys as never,
    signingAlgorithm: P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: uri }], true)],
  });
  return csr.toString("pem");
}

export interface ParsedCsr {
  /** The CSR's public key (SPKI DER), for the certificate to be issued. */
  publicKeySpki: ArrayBuffer;
  /** URI SANs the CSR asks for (informational: the CA decides the identity). */
  uris: string[];
}

/** Parses a CSR and checks its self-signature (proof of possession of the key). */
export async function readCsr(pem: string): Promise<ParsedCsr> {
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new AmbitError(
      "INVALID_FIELD",
      `IstioCertificateRequest: field csr: not a PEM PKCS#10 request (${(e as Error).message})`,
    );
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (e) {
    throw new AmbitError(
      "INVALID_FIELD",
      `IstioCertificateRequest: field csr: signature cannot be checked (${(e as Error).message})`,
    );
  }
  if (!ok)
    throw new AmbitError(
      "INVALID_FIELD",
      "IstioCertificateRequest: field csr: signature does not match its public key",
    );
  checkKeyStrength(csr.publicKey.rawData);
  const uris: string[] = [];
  const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension) as
    | InstanceType<typeof x509.SubjectAlternativeNameExtension>
    | undefined;
  if (san) for (const n of san.names.items) if (n.type === "url") uris.push(n.value);
  return { publicKeySpki: csr.publicKey.rawData, uris };
}

/** Mesh keys are ECDSA P-256/P-384 or RSA of at least 2048 bits; anything weaker or exotic is refused. */
function checkKeyStrength(spki: ArrayBuffer): void {
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (e) {
    throw new AmbitError(
      "INVALID_FIELD",
      `IstioCertificateRequest: field csr: unreadable public key (${(e as Error).message})`,
    );
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "ec" && (d.namedCurve === "prime256v1" || d.namedCurve === "secp384r1"))
    return;
  if (key.asymmetricKeyType === "rsa" && (d.modulusLength ?? 0) >= 2048) return;
  throw new AmbitError(
    "INVALID_FIELD",
    `IstioCertificateRequest: field csr: public key ${key.asymmetricKeyType ?? "?"}${d.namedCurve ? ` ${d.namedCurve}` : ""}${d.modulusLength ? ` ${d.modulusLength} bits` : ""} is not allowed (want ECDSA P-256/P-384 or RSA >= 2048)`,
  );
}

/** Parses PEM certificates (a bundle string or a list of PEMs) into node X509Certificates. */
export function parseChain(pem: string | readonly string[]): X509Certificate[] {
  const blocks = typeof pem === "string" ? splitPem(pem) : pem.flatMap((p) => splitPem(p));
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

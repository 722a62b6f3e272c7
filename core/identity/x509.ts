// Certificates and CSRs of mesh identities. Creation goes through
// @peculiar/x509 (node has no certificate builder); everything read on a hot
// path (peer identity per handshake, chain checks, expiry) uses node:crypto's
// X509Certificate, which is native and cheap (cert-read.ts, re-exported here).
import { createPublicKey, X509Certificate } from "node:crypto";
import { AmbitError } from "../errors/errors.js";
import { type KeyPair, P256 } from "./keys.js";
import { x509 } from "./peculiar.js";
import { type Identity, identityUri } from "./spiffe.js";

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

export {
  type ChainVerdict,
  isExpired,
  meshPeerIdentity,
  notAfter,
  notBefore,
  parseChain,
  secondsUntilExpiry,
  spiffeIdOf,
  subjectAltNames,
  verifyChain,
} from "./cert-read.js";

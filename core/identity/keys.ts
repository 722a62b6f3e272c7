// Key pairs and PEM conversions. Workload and CA keys are ECDSA P-256 (what
// istiod and Istio's ztunnel use); a user-provided CA key may also be RSA or
// ECDSA P-384, so importing detects the algorithm from the key itself.
import { createPrivateKey, createPublicKey, type webcrypto } from "node:crypto";
import { AmbitError } from "../errors/errors.js";
import { subtle, x509 } from "./peculiar.js";

export type CryptoKey = webcrypto.CryptoKey;
export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** WebCrypto parameters for signing with a key (also names the hash). */
export type SigningAlgorithm =
  | { name: "ECDSA"; namedCurve: "P-256" | "P-384"; hash: "SHA-256" | "SHA-384" }
  | { name: "RSASSA-PKCS1-v1_5"; hash: "SHA-256" };

export const P256: SigningAlgorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export async function generateKeyPair(): Promise<KeyPair> {
  // extractable: the private key is written as PEM (CA on disk, ztunnel TLS context).
  const keys = (await subtle.generateKey(P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  return { privateKey: keys.privateKey, publicKey: keys.publicKey };
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey("spki", key);
  return x509.PemConverter.encode(der, "PUBLIC KEY");
}

/** The signing algorithm a private key PEM implies (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"). */
export function signingAlgorithmOf(keyPem: string, what = "private key"): SigningAlgorithm {
  let ko: ReturnType<typeof createPrivateKey>;
  try {
    ko = createPrivateKey(keyPem);
  } catch (e) {
    throw new AmbitError("CONFIG", `${what}: not a PEM private key (${(e as Error).message})`);
  }
  if (ko.asymmetricKeyType === "ec") {
    const curve = ko.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return P256;
    if (curve === "secp384r1") return { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" };
    throw new AmbitError("CONFIG", `${what}: unsupported EC curve ${curve ?? "?"} (want P-256 or P-384)`);
  }
  if (ko.asymmetricKeyType === "rsa") return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  throw new AmbitError(
    "CONFIG",
    `${what}: unsupported key type ${ko.asymmetricKeyType ?? "?"} (want EC or RSA)`,
  );
}

/** Imports a private key PEM of any common encoding into WebCrypto, with its public half. */
export async function importPrivateKeyPem(
  keyPem: string,
  what = "private key",
): Promise<KeyPair & { algorithm: SigningAlgorithm }> {
  const algorithm = signingAlgorithmOf(keyPem, what);
  const ko = createPrivateKey(keyPem);
  const pkcs8 = ko.export({ type: "pkcs8", format: "der" });
  const spki = createPublicKey(ko).export({ type: "spki", format: "der" });
  const importAlg =
    algorithm.name === "ECDSA"
      ? { name: "ECDSA", namedCurve: algorithm.namedCurve }
      : { name: "RSASSA-PKCS1-v1_5", hash: algorithm.hash };
  const privateKey = await subtle.importKey("pkcs8", pkcs8, importAlg, true, ["sign"]);
  const publicKey = await subtle.importKey("spki", spki, importAlg, true, ["verify"]);
  return { privateKey, publicKey, algorithm };
}

/** Splits a PEM bundle into its blocks of one label (default CERTIFICATE), each re-encoded canonically, newline-terminated. */
export function splitPem(pem: string, label = "CERTIFICATE"): string[] {
  const out: string[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  for (const m of pem.matchAll(re)) {
    const b64 = (m[1] ?? "").replace(/\s+/g, "");
    out.push(pemLine(x509.PemConverter.encode(Buffer.from(b64, "base64"), label)));
  }
  return out;
}

/** Normalises a PEM to end with exactly one newline (what node's tls accepts best when joined). */
export function pemLine(pem: string): string {
  return `${pem.trim()}\n`;
}

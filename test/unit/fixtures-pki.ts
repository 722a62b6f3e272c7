// A throwaway mesh PKI for unit tests: a self-signed root and workload leaf
// certificates with a SPIFFE URI SAN, as the controller's CA would issue.
import { KeyObject, webcrypto } from "node:crypto";
import type { CertBundle, CertSource } from "../../core/hbone/types.js";
import { x509 } from "../../core/identity/peculiar.js";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

async function keyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
}

function keyPem(k: CryptoKey): string {
  return KeyObject.from(k).export({ type: "pkcs8", format: "pem" }) as string;
}

export interface TestPki {
  rootPem: string;
  /** A leaf for a SPIFFE id (or no URI SAN when identity is ""). */
  issue(identity: string, opts?: { notBefore?: Date; notAfter?: Date }): Promise<CertBundle>;
  /** A CertSource that issues once per identity and caches. */
  source(): CertSource & { issued: Map<string, CertBundle> };
}

let serial = 1;

export async function makePki(name = "ambit test root"): Promise<TestPki> {
  const rootKeys = await keyPair();
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, "0"),
    name: `CN=${name}, O=ambit`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys: rootKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const rootPem = root.toString("pem");
  const issue = async (
    identity: string,
    opts: { notBefore?: Date; notAfter?: Date } = {},
  ): Promise<CertBundle> => {
    const keys = await keyPair();
    const notAfter = opts.notAfter ?? new Date(Date.now() + 3600_000);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: (serial++).toString(16).padStart(2, "0"),
      subject: "O=ambit",
      issuer: root.subject,
      notBefore: opts.notBefore ?? new Date(Date.now() - 60_000),
      notAfter,
      signingKey: rootKeys.privateKey,
      publicKey: keys.publicKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        ...(identity
          ? [new x509.SubjectAlternativeNameExtension([{ type: "url", value: identity }], true)]
          : []),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    return {
      identity,
      keyPem: keyPem(keys.privateKey),
      certChainPem: [leaf.toString("pem")],
      rootsPem: [rootPem],
      notAfter,
    };
  };
  return {
    rootPem,
    issue,
    source() {
      const issued = new Map<string, CertBundle>();
      const pending = new Map<string, Promise<CertBundle>>();
      return {
        issued,
        get(identity: string) {
          let p = pending.get(identity);
          if (!p) {
            p = issue(identity).then((b) => {
              issued.set(identity, b);
              return b;
            });
            pending.set(identity, p);
          }
          return p;
        },
      };
    },
  };
}

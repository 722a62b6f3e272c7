// The mesh certificate authority: a signing CA (a self-signed root made on
// first start, or a user-provided root or intermediate) kept in a directory,
// with istiod's plug-in file names (ca-cert.pem, ca-key.pem, root-cert.pem,
// cert-chain.pem) so an existing Istio `cacerts` secret can be reused as is.
import { createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { AmbitError } from "../../core/errors/errors.js";
import {
  type CryptoKey,
  generateKeyPair,
  importPrivateKeyPem,
  P256,
  pemLine,
  privateKeyToPem,
  type SigningAlgorithm,
  splitPem,
} from "../../core/identity/keys.js";
import { x509 } from "../../core/identity/peculiar.js";
import { type Identity, identityUri } from "../../core/identity/spiffe.js";
import { type ParsedCsr, readCsr, verifyChain } from "../../core/identity/x509.js";
import { writeFileAtomic } from "../../core/files/write-atomic.js";

export const CA_FILES = {
  cert: "ca-cert.pem",
  key: "ca-key.pem",
  root: "root-cert.pem",
  chain: "cert-chain.pem",
} as const;

/** Backdating of notBefore, so peers with a slightly slow clock accept a fresh certificate. */
const CLOCK_SKEW_MS = 60_000;
const DEFAULT_ROOT_TTL_DAYS = 3650;
const DEFAULT_SERVING_TTL_SECONDS = 365 * 86400;

export interface CaOptions {
  trustDomain: string;
  /** Lifetime of a generated root (default 3650 days). */
  rootTtlDays?: number;
}

export interface SignedWorkload {
  /** leaf, intermediates..., root last (as istiod answers CreateCertificate). */
  certChain: string[];
  notAfter: Date;
}

export interface ServingCertificate {
  keyPem: string;
  /** leaf then intermediates: what a TLS server presents (root not included). */
  certChainPem: string[];
  notAfter: Date;
}

interface Signer {
  cert: X509Certificate;
  /** The same certificate in @peculiar/x509's form: its subject is copied byte for byte as the leaves' issuer. */
  peculiar: InstanceType<typeof x509.X509Certificate>;
  key: CryptoKey;
  algorithm: SigningAlgorithm;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1; // no leading zero octet to strip
  return b.toString("hex");
}

function configError(file: string, reason: string): AmbitError {
  return new AmbitError("CONFIG", `CA ${file}: ${reason}`, { file });
}

export class CertificateAuthority {
  private constructor(
    readonly trustDomain: string,
    private readonly signer: Signer,
    /** The signing CA, any intermediates above it, and the root last (PEMs). */
    private readonly chainToRoot: string[],
    /** "generated" (self-signed root made here) or "provided" (user's files). */
    readonly origin: "generated" | "provided",
  ) {}

  /** Loads the CA from `dir`, or creates a self-signed root there on first start. */
  static async loadOrCreate(dir: string, opts: CaOptions): Promise<CertificateAuthority> {
    const certPath = join(dir, CA_FILES.cert);
    const keyPath = join(dir, CA_FILES.key);
    const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
    if (hasCert !== hasKey) {
      throw configError(
        dir,
        `${hasCert ? CA_FILES.cert : CA_FILES.key} exists without ${hasCert ? CA_FILES.key : CA_FILES.cert}; provide both or neither`,
      );
    }
    if (hasCert) return CertificateAuthority.load(dir, opts);
    return CertificateAuthority.create(dir, opts);
  }

  private static async create(dir: string, opts: CaOptions): Promise<CertificateAuthority> {
    identityUri({ trustDomain: opts.trustDomain, namespace: "x", serviceAccount: "x" }); // validates the trust domain
    const keys = await generateKeyPair();
    const now = Date.now();
    const days = opts.rootTtlDays ?? DEFAULT_ROOT_TTL_DAYS;
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: `O=${opts.trustDomain}, CN=ambit root CA`,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + days * 86400_000),
      signingAlgorithm: P256,
      keys: keys as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey),
      ],
    });
    const certPem = pemLine(root.toString("pem"));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(dir, CA_FILES.key), await privateKeyToPem(keys.privateKey), 0o600);
    await writeFileAtomic(join(dir, CA_FILES.cert), certPem, 0o644);
    const signer: Signer = {
      cert: new X509Certificate(certPem),
      peculiar: root,
      key: keys.privateKey,
      algorithm: P256,
    };
    return new CertificateAuthority(opts.trustDomain, signer, [certPem], "generated");
  }

  private static async load(dir: string, opts: CaOptions): Promise<CertificateAuthority> {
    identityUri({ trustDomain: opts.trustDomain, namespace: "x", serviceAccount: "x" });
    const certPems = splitPem(await readFile(join(dir, CA_FILES.cert), "utf8"));
    if (certPems.length === 0) throw configError(join(dir, CA_FILES.cert), "contains no PEM certificate");
    const caPem = certPems[0] as string;
    const caCert = new X509Certificate(caPem);
    const keyPem = await readFile(join(dir, CA_FILES.key), "utf8");
    const imported = await importPrivateKeyPem(keyPem, join(dir, CA_FILES.key));

    // The key must be the certificate's: compare the public halves.
    const certSpki = caCert.publicKey.export({ type: "spki", format: "der" });
    const keySpki = createPublicKey(keyPem).export({ type: "spki", format: "der" });
    if (!certSpki.equals(keySpki))
      throw configError(join(dir, CA_FILES.key), `is not the key of ${CA_FILES.cert}`);
    if (!caCert.ca)
      throw configError(
        join(dir, CA_FILES.cert),
        "is not a CA certificate (basicConstraints CA:TRUE missing)",
      );
    const peculiar = new x509.X509Certificate(caPem);
    const ku = peculiar.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
      throw configError(join(dir, CA_FILES.cert), "key usage lacks keyCertSign");
    }

    // Chain: cert-chain.pem if given (ca-cert first), plus the rest of ca-cert.pem.
    const chainPath = join(dir, CA_FILES.chain);
    let chain = (await exists(chainPath)) ? splitPem(await readFile(chainPath, "utf8")) : certPems;
    if (
      chain.length === 0 ||
      new X509Certificate(chain[0] as string).fingerprint256 !== caCert.fingerprint256
    ) {
      chain = [caPem, ...chain];
    }
    const rootPath = join(dir, CA_FILES.root);
    let rootPem: string;
    if (await exists(rootPath)) {
      const roots = splitPem(await readFile(rootPath, "utf8"));
      if (roots.length === 0) throw configError(rootPath, "contains no PEM certificate");
      rootPem = roots[0] as string;
    } else {
      const last = new X509Certificate(chain[chain.length - 1] as string);
      if (!last.checkIssued(last) || !last.verify(last.publicKey)) {
        throw configError(join(dir, CA_FILES.cert), `is an intermediate but no ${CA_FILES.root} was given`);
      }
      rootPem = chain[chain.length - 1] as string;
    }
    const root = new X509Certificate(rootPem);
    if (new X509Certificate(chain[chain.length - 1] as string).fingerprint256 !== root.fingerprint256)
      chain.push(rootPem);
    const verdict = verifyChain(chain, [root]);
    if (!verdict.ok) throw configError(dir, `the CA chain does not verify: ${verdict.reason}`);

    const signer: Signer = {
      cert: caCert,
      peculiar,
      key: imported.privateKey,
      algorithm: imported.algorithm,
    };
    return new CertificateAuthority(opts.trustDomain, signer, chain, "provided");
  }

  /** The mesh root (PEM): what every proxy trusts. */
  get rootPem(): string {
    return this.chainToRoot[this.chainToRoot.length - 1] as string;
  }

  get rootsPem(): string[] {
    return [this.rootPem];
  }

  /** No certificate this CA signs outlives the shortest-lived certificate of its own chain. */
  get notAfter(): Date {
    let min = Number.POSITIVE_INFINITY;
    for (const p of this.chainToRoot) min = Math.min(min, new Date(new X509Certificate(p).validTo).getTime());
    return new Date(min);
  }

  private validity(ttlSeconds: number): { notBefore: Date; notAfter: Date } {
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw new AmbitError(
        "INVALID_FIELD",
        `certificate lifetime: field ttlSeconds: must be a positive number (got ${ttlSeconds})`,
      );
    }
    const now = Date.now();
    const caFrom = new Date(this.signer.cert.validFrom).getTime();
    const notBefore = new Date(Math.ceil(Math.max(now - CLOCK_SKEW_MS, caFrom) / 1000) * 1000);
    // Certificates carry whole seconds: round down so the returned date is the certificate's.
    const notAfter = new Date(
      Math.floor(Math.min(now + ttlSeconds * 1000, this.notAfter.getTime()) / 1000) * 1000,
    );
    if (notAfter.getTime() <= now)
      throw new AmbitError("CA_REFUSED", `the CA certificate expired at ${this.notAfter.toISOString()}`);
    return { notBefore, notAfter };
  }

  private async sign(params: {
    publicKey: ArrayBuffer | CryptoKey;
    subject: string;
    sans: Array<{ type: "url" | "dns" | "ip"; value: string }>;
    sanCritical: boolean;
    ttlSeconds: number;
  }): Promise<{ pem: string; notAfter: Date }> {
    const { notBefore, notAfter } = this.validity(params.ttlSeconds);
    const ski = this.signer.peculiar.getExtension(x509.SubjectKeyIdentifierExtension);
    const aki = ski
      ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
      : await x509.AuthorityKeyIdentifierExtension.create(this.signer.peculiar.publicKey);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: params.subject,
      issuer: this.signer.peculiar.subjectName,
      notBefore,
      notAfter,
      signingAlgorithm: this.signer.algorithm,
      publicKey: params.publicKey as never,
      signingKey: this.signer.key as never,
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
        aki,
        new x509.SubjectAlternativeNameExtension(params.sans, params.sanCritical),
      ],
    });
    return { pem: pemLine(cert.toString("pem")), notAfter };
  }

  /**
   * Signs a workload certificate for `identity` with the CSR's public key
   * (a PEM, checked here, or a CSR already checked by readCsr).
   * The CSR's own SANs and subject are ignored: the identity decided by the
   * caller's authorization is the only one that goes in (as a URI SAN).
   */
  async signWorkload(
    csrIn: string | ParsedCsr,
    identity: Identity | string,
    ttlSeconds: number,
  ): Promise<SignedWorkload> {
    const uri = identityUri(identity);
    const csr = typeof csrIn === "string" ? await readCsr(csrIn) : csrIn;
    // Empty subject, so the SAN is critical (RFC 5280 4.2.1.6), as istiod does.
    const { pem, notAfter } = await this.sign({
      publicKey: csr.publicKeySpki,
      subject: "",
      sans: [{ type: "url", value: uri }],
      sanCritical: true,
      ttlSeconds,
    });
    return { certChain: [pem, ...this.chainToRoot], notAfter };
  }

  /** A TLS server certificate for the controller itself (15012): DNS and IP SANs. */
  async issueServing(opts: {
    dnsNames?: string[];
    ips?: string[];
    ttlSeconds?: number;
  }): Promise<ServingCertificate> {
    const dnsNames = opts.dnsNames ?? [];
    const ips = opts.ips ?? [];
    for (const ip of ips)
      if (!isIP(ip))
        throw new AmbitError(
          "INVALID_FIELD",
          `serving certificate: field ips: ${JSON.stringify(ip)} is not an IP address`,
        );
    if (dnsNames.length + ips.length === 0)
      throw new AmbitError(
        "INVALID_FIELD",
        "serving certificate: field dnsNames: give at least one DNS name or IP",
      );
    const keys = await generateKeyPair();
    const cn = (dnsNames[0] ?? (ips[0] as string)).replace(/[,+="<>#;\\]/g, "");
    const { pem, notAfter } = await this.sign({
      publicKey: keys.publicKey,
      subject: `CN=${cn}`,
      sans: [
        ...dnsNames.map((v) => ({ type: "dns" as const, value: v })),
        ...ips.map((v) => ({ type: "ip" as const, value: v })),
      ],
      sanCritical: false,
      ttlSeconds: opts.ttlSeconds ?? DEFAULT_SERVING_TTL_SECONDS,
    });
    return {
      keyPem: await privateKeyToPem(keys.privateKey),
      certChainPem: [pem, ...this.chainToRoot.slice(0, -1)],
      notAfter,
    };
  }
}

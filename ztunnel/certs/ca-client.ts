// The ztunnel's client of IstioCertificateService/CreateCertificate: a fresh
// P-256 key and CSR per request, the node's bearer token in the metadata and
// the identity in ImpersonatedIdentity (as Istio's ztunnel sends them), over
// TLS to 15012 trusting the mesh root, or plaintext to 15010 locally.
import { createPublicKey } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AmbitError } from "../../core/errors/errors.js";
import {
  type IstioCertificateRequest,
  IstioCertificateRequestSchema,
  type IstioCertificateResponse,
  IstioCertificateService,
} from "../../core/gen/citadel_pb.js";
import { notAfter, notBefore, parseChain, spiffeIdOf, verifyChain } from "../../core/identity/cert-read.js";
import { type Identity, identityUri } from "../../core/identity/spiffe.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";

// The CSR is X.509 work, done by the project's X.509 library (@peculiar/x509)
// rather than hand-written DER. It costs about a second and 20 MB while it
// loads (4.5 MB kept): loaded on the first certificate request, not at start,
// so the ztunnel is listening before it. Reading certificates (cert-read.ts)
// needs only node:crypto.
let csrLib: Promise<[typeof import("../../core/identity/keys.js"), typeof import("../../core/identity/x509.js")]>;
function loadCsrLib() {
  csrLib ??= Promise.all([import("../../core/identity/keys.js"), import("../../core/identity/x509.js")]);
  return csrLib;
}

/** keys.ts's pemLine, without loading it. */
function pemLine(pem: string): string {
  return `${pem.trim()}\n`;
}

export interface CaClientOptions {
  /** host:port of the CA (the controller's 15012, or 15010 locally). */
  address: string;
  /** The node's bearer token, or a function returning the current one (tokens may rotate). */
  token?: string | (() => string | Promise<string>);
  /** TLS trusting these roots; absent means plaintext. */
  tls?: { rootsPem: string[]; serverName?: string };
  /** Requested lifetime in seconds (0: the CA's default). */
  ttlSeconds?: number;
  /** Send the identity as ImpersonatedIdentity metadata (Istio's ztunnel does); default true. */
  impersonate?: boolean;
  /** Deadline of one CreateCertificate call (default 10 s). */
  timeoutMs?: number;
}

export interface IssuedCertificate {
  identity: string;
  keyPem: string;
  /** Leaf then intermediates: what a TLS endpoint presents. */
  certChainPem: string[];
  /** The mesh root(s) the chain leads to: what peers are verified against. */
  rootsPem: string[];
  notBefore: Date;
  notAfter: Date;
}

/** Where certificates come from; CaClient is the real one. */
export interface CertificateSource {
  fetch(identity: Identity | string): Promise<IssuedCertificate>;
}

type UnaryClient = grpc.Client & {
  createCertificate(
    req: IstioCertificateRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: IstioCertificateResponse) => void,
  ): grpc.ClientUnaryCall;
};

const ClientCtor = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(IstioCertificateService),
  "IstioCertificateService",
) as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => UnaryClient;

export class CaClient implements CertificateSource {
  private readonly client: UnaryClient;

  constructor(private readonly opts: CaClientOptions) {
    const creds = opts.tls
      ? grpc.credentials.createSsl(Buffer.from(opts.tls.rootsPem.map(pemLine).join("")))
      : grpc.credentials.createInsecure();
    const channelOptions: grpc.ChannelOptions = {
      // The certificate manager does its own retries: the channel must come back fast when the CA does.
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5000,
    };
    if (opts.tls?.serverName) {
      channelOptions["grpc.ssl_target_name_override"] = opts.tls.serverName;
      channelOptions["grpc.default_authority"] = opts.tls.serverName;
    }
    this.client = new ClientCtor(opts.address, creds, channelOptions);
  }

  private async metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    const t = this.opts.token;
    const token = typeof t === "function" ? await t() : t;
    if (token) md.set("authorization", `Bearer ${token}`);
    return md;
  }

  /** Requests a certificate for `identity` with a new key; checks what comes back before returning it. */
  async fetch(identity: Identity | string): Promise<IssuedCertificate> {
    const uri = identityUri(identity);
    const [{ generateKeyPair, privateKeyToPem }, { createCsr }] = await loadCsrLib();
    const keys = await generateKeyPair();
    const csr = await createCsr(uri, keys);
    const req = create(IstioCertificateRequestSchema, {
      csr,
      validityDuration: BigInt(Math.floor(this.opts.ttlSeconds ?? 0)),
      ...(this.opts.impersonate === false ? {} : { metadata: { ImpersonatedIdentity: uri } }),
    });
    const md = await this.metadata();
    const res = await new Promise<IstioCertificateResponse>((resolve, reject) => {
      const deadline = new Date(Date.now() + (this.opts.timeoutMs ?? 10_000));
      this.client.createCertificate(req, md, { deadline }, (err, r) => {
        if (err) {
          const code = err.code === grpc.status.UNAUTHENTICATED ? "CA_UNAUTHENTICATED" : "CA_REFUSED";
          reject(
            new AmbitError(code, `CreateCertificate for ${uri}: ${err.details || err.message}`, {
              grpcCode: err.code,
              identity: uri,
            }),
          );
        } else resolve(r as IstioCertificateResponse);
      });
    });
    return checkResponse(uri, await privateKeyToPem(keys.privateKey), res.certChain);
  }

  close(): void {
    this.client.close();
  }
}

/** The CA's answer must be for our key and identity and chain to its own last certificate. */
function checkResponse(uri: string, keyPem: string, chainPem: string[]): IssuedCertificate {
  const bad = (reason: string) =>
    new AmbitError("CA_REFUSED", `CreateCertificate for ${uri}: unusable answer: ${reason}`, {
      identity: uri,
    });
  if (chainPem.length === 0) throw bad("empty certificate chain");
  const chain = parseChain(chainPem);
  const leaf = chain[0];
  if (!leaf) throw bad("empty certificate chain");
  const got = spiffeIdOf(leaf);
  if (got !== uri) throw bad(`the certificate is for ${got ?? "no SPIFFE identity"}`);
  const ours = createPublicKey(keyPem).export({ type: "spki", format: "der" });
  if (!leaf.publicKey.export({ type: "spki", format: "der" }).equals(ours))
    throw bad("the certificate is not for our key");
  // istiod's convention: the root is the last certificate of the chain.
  const root = chain.length > 1 ? (chain[chain.length - 1] as typeof leaf) : undefined;
  if (!root) throw bad("no root in the chain");
  const verdict = verifyChain(chain, [root]);
  if (!verdict.ok) throw bad(verdict.reason);
  const pems = chain.map((c) => pemLine(c.toString()));
  return {
    identity: uri,
    keyPem,
    certChainPem: pems.slice(0, -1),
    rootsPem: pems.slice(-1),
    notBefore: notBefore(leaf),
    notAfter: notAfter(leaf),
  };
}

// istio.v1.auth.IstioCertificateService/CreateCertificate: authenticate the
// caller (its node), decide the identity, check that identity runs on that
// node, sign. Every refusal is a gRPC status naming identity and node, logged
// and counted by reason.

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AmbitError } from "../../core/errors/errors.js";
import {
  type IstioCertificateRequest,
  type IstioCertificateResponse,
  IstioCertificateResponseSchema,
  IstioCertificateService,
} from "../../core/gen/citadel_pb.js";
import { type ParsedCsr, readCsr } from "../../core/identity/x509.js";
import { type Logger, logger as makeLogger } from "../../core/telemetry/logger.js";
import { counter } from "../../core/telemetry/metrics.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";
import type { CallerAuthenticator } from "./authn.js";
import type { CertificateAuthority } from "./authority.js";
import {
  authorizeIdentity,
  IMPERSONATED_IDENTITY,
  type PodIdentity,
  type RefusalReason,
  requestedIdentity,
} from "./authz.js";

export const caMetrics = {
  signed: counter("ambit_ca_certificates_signed_total", "Workload certificates signed by the CA"),
  refused: counter("ambit_ca_refusals_total", "CreateCertificate requests refused, by reason", ["reason"]),
};

export interface CaServiceDeps {
  ca: CertificateAuthority;
  authenticator: CallerAuthenticator;
  /** The (namespace, service account) of each pod scheduled on a node, from the controller's model. */
  podsOnNode: (node: string) => readonly PodIdentity[] | Promise<readonly PodIdentity[]>;
  /** Lifetime when the request names none (default 24h). */
  defaultTtlSeconds?: number;
  /** Upper bound of a requested lifetime (default: the default lifetime). */
  maxTtlSeconds?: number;
  logger?: Logger;
}

const STATUS_OF: Record<RefusalReason, grpc.status> = {
  unauthenticated: grpc.status.UNAUTHENTICATED,
  bad_request: grpc.status.INVALID_ARGUMENT,
  no_identity: grpc.status.INVALID_ARGUMENT,
  ambiguous_identity: grpc.status.INVALID_ARGUMENT,
  invalid_identity: grpc.status.INVALID_ARGUMENT,
  identity_mismatch: grpc.status.PERMISSION_DENIED,
  wrong_trust_domain: grpc.status.PERMISSION_DENIED,
  not_on_node: grpc.status.PERMISSION_DENIED,
  ca_error: grpc.status.INTERNAL,
};

/** Why a CreateCertificate was refused; mapped to a gRPC status by register(). */
export class CaRefusal extends AmbitError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(reason === "unauthenticated" ? "CA_UNAUTHENTICATED" : "CA_REFUSED", message, { reason });
    this.name = "CaRefusal";
  }
}

/** The lifetime to issue: the request's (seconds) if positive, capped; else the default. */
export function effectiveTtlSeconds(requested: bigint | number, defaultTtl: number, maxTtl: number): number {
  const r = Number(requested);
  const ttl = r > 0 ? r : defaultTtl;
  return Math.min(ttl, maxTtl);
}

/** The CreateCertificate handler as a plain async function (the gRPC binding is below). */
export function createCertificateHandler(deps: CaServiceDeps) {
  const log = deps.logger ?? makeLogger("controller.ca");
  const defaultTtl = deps.defaultTtlSeconds ?? 86400;
  const maxTtl = deps.maxTtlSeconds ?? Math.max(defaultTtl, 86400);

  return async (
    req: IstioCertificateRequest,
    metadata: grpc.Metadata,
    peerCert?: unknown,
  ): Promise<IstioCertificateResponse> => {
    const caller = await deps.authenticator.authenticate(
      metadata,
      peerCert ? { certificate: peerCert as never } : undefined,
    );
    if (!caller)
      throw new CaRefusal(
        "unauthenticated",
        "CreateCertificate: missing or invalid credentials (want authorization: Bearer <node token>)",
      );

    let csr: ParsedCsr;
    try {
      csr = await readCsr(req.csr);
    } catch (e) {
      throw new CaRefusal(
        "bad_request",
        `CreateCertificate from node ${caller.node}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (csr.publicKeySpki.byteLength === 0)
      throw new CaRefusal(
        "bad_request",
        `CreateCertificate from node ${caller.node}: the CSR has no public key`,
      );

    const imp = req.metadata?.[IMPERSONATED_IDENTITY];
    if (imp !== undefined && imp !== null && typeof imp !== "string") {
      throw new CaRefusal(
        "bad_request",
        `CreateCertificate from node ${caller.node}: metadata.${IMPERSONATED_IDENTITY} must be a string`,
      );
    }
    const wanted = requestedIdentity(csr.uris, imp ?? undefined);
    if (!wanted.ok)
      throw new CaRefusal(wanted.reason, `CreateCertificate from node ${caller.node}: ${wanted.message}`);

    if (caller.self) {
      const self = caller.self;
      const me = wanted.identity;
      if (me.namespace !== self.namespace || me.serviceAccount !== self.serviceAccount)
        throw new CaRefusal(
          "identity_mismatch",
          `CreateCertificate refused: a ${self.namespace}/${self.serviceAccount} token may only ask for its own identity, not ${wanted.uri}`,
        );
    }
    const pods = await deps.podsOnNode(caller.node);
    const verdict = authorizeIdentity(caller.node, wanted.identity, () => pods, deps.ca.trustDomain);
    if (!verdict.ok) throw new CaRefusal(verdict.reason, `CreateCertificate refused: ${verdict.message}`);

    const ttl = effectiveTtlSeconds(req.validityDuration, defaultTtl, maxTtl);
    let signed: Awaited<ReturnType<CertificateAuthority["signWorkload"]>>;
    try {
      signed = await deps.ca.signWorkload(csr, wanted.identity, ttl);
    } catch (e) {
      const reason: RefusalReason =
        e instanceof AmbitError && e.code === "INVALID_FIELD" ? "bad_request" : "ca_error";
      throw new CaRefusal(
        reason,
        `CreateCertificate for ${wanted.uri} (node ${caller.node}): ${(e as Error).message}`,
      );
    }
    caMetrics.signed.inc();
    log.debug(
      { identity: wanted.uri, node: caller.node, notAfter: signed.notAfter.toISOString() },
      "certificate signed",
    );
    return create(IstioCertificateResponseSchema, { certChain: signed.certChain });
  };
}

/** Adds IstioCertificateService to a grpc-js server. */
export function register(server: grpc.Server, deps: CaServiceDeps): void {
  const log = deps.logger ?? makeLogger("controller.ca");
  const handle = createCertificateHandler({ ...deps, logger: log });
  const impl: grpc.UntypedServiceImplementation = {
    createCertificate: (
      call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>,
      callback: grpc.sendUnaryData<IstioCertificateResponse>,
    ) => {
      const peerCert = call.getAuthContext?.()?.sslPeerCertificate;
      handle(call.request, call.metadata, peerCert).then(
        (res) => callback(null, res),
        (e: unknown) => {
          const refusal =
            e instanceof CaRefusal
              ? e
              : new CaRefusal("ca_error", `CreateCertificate: ${(e as Error)?.message ?? String(e)}`);
          caMetrics.refused.inc({ reason: refusal.reason });
          // Refusals are rare and security-relevant: each is logged.
          log.warn({ reason: refusal.reason, peer: call.getPeer() }, refusal.message);
          callback({
            code: STATUS_OF[refusal.reason],
            details: refusal.message,
            metadata: new grpc.Metadata(),
          });
        },
      );
    },
  };
  server.addService(grpcServiceDefinition(IstioCertificateService), impl);
}

/**
 * TLS credentials for the controller's 15012: a serving certificate from the
 * CA itself (so proxies need only the mesh root to trust it).
 */
export async function tlsServerCredentials(
  ca: CertificateAuthority,
  names: { dnsNames?: string[]; ips?: string[] },
): Promise<{ credentials: grpc.ServerCredentials; notAfter: Date }> {
  const serving = await ca.issueServing(names);
  const credentials = grpc.ServerCredentials.createSsl(null, [
    { private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certChainPem.join("")) },
  ]);
  return { credentials, notAfter: serving.notAfter };
}

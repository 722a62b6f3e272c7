// Shared pieces of the CA tests: a real CertificateAuthority in a temporary
// directory, served by a real grpc-js server on a loopback port (plaintext as
// 15010, or TLS as 15012 with a serving certificate from the CA itself).

import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import type { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { Counter } from "prom-client";
import { type CallerAuthenticator, StaticTokenAuthenticator } from "../../controller/ca/authn.js";
import { CertificateAuthority } from "../../controller/ca/authority.js";
import type { PodIdentity } from "../../controller/ca/authz.js";
import { register, tlsServerCredentials } from "../../controller/ca/service.js";
import { importPrivateKeyPem } from "../../core/identity/keys.js";
import { x509 } from "../../core/identity/peculiar.js";

export const TD = "cluster.local";
export const NODE1_TOKEN = "node-1-token-0123456789abcdef";
export const NODE2_TOKEN = "node-2-token-0123456789abcdef";

/** A temporary directory removed when the test ends. */
export async function tempDir(
  t: { teardown(fn: () => unknown): void },
  prefix = "ambit-ca-",
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface RunningCa {
  ca: CertificateAuthority;
  port: number;
  address: string;
  /** Pods per node, as the controller's model would say; tests change it freely. */
  pods: Map<string, PodIdentity[]>;
  /** Abrupt stop, as a killed controller. */
  kill(): void;
  /** Serve again on the same port (after kill). */
  revive(): Promise<void>;
  close(): Promise<void>;
}

export interface StartCaOptions {
  dir: string;
  tls?: boolean;
  defaultTtlSeconds?: number;
  maxTtlSeconds?: number;
  pods?: Record<string, PodIdentity[]>;
  /** Who the callers are (default: node-1 and node-2 node tokens). */
  authenticator?: CallerAuthenticator;
}

async function bind(server: grpc.Server, port: number, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
}

export async function startCa(opts: StartCaOptions): Promise<RunningCa> {
  const ca = await CertificateAuthority.loadOrCreate(opts.dir, { trustDomain: TD });
  const pods = new Map<string, PodIdentity[]>(
    Object.entries(
      opts.pods ?? {
        "node-1": [{ namespace: "demo", serviceAccount: "client" }],
        "node-2": [{ namespace: "demo", serviceAccount: "server" }],
      },
    ),
  );
  const authenticator =
    opts.authenticator ?? new StaticTokenAuthenticator({ [NODE1_TOKEN]: "node-1", [NODE2_TOKEN]: "node-2" });
  let creds = grpc.ServerCredentials.createInsecure();
  if (opts.tls) {
    creds = (
      await tlsServerCredentials(ca, {
        dnsNames: ["localhost", "ambit-controller.ambit-system.svc"],
        ips: ["127.0.0.1"],
      })
    ).credentials;
  }
  const make = () => {
    const server = new grpc.Server();
    register(server, {
      ca,
      authenticator,
      podsOnNode: (node) => pods.get(node) ?? [],
      ...(opts.defaultTtlSeconds !== undefined ? { defaultTtlSeconds: opts.defaultTtlSeconds } : {}),
      ...(opts.maxTtlSeconds !== undefined ? { maxTtlSeconds: opts.maxTtlSeconds } : {}),
    });
    return server;
  };
  let server: grpc.Server | undefined = make();
  const port = await bind(server, 0, creds);
  return {
    ca,
    port,
    address: `127.0.0.1:${port}`,
    pods,
    kill() {
      server?.forceShutdown();
      server = undefined;
    },
    async revive() {
      if (server) return;
      server = make();
      await bind(server, port, creds);
    },
    async close() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
    },
  };
}

/** The value of a counter for one label set (0 when never incremented). */
export async function counterValue(c: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const v = await c.get();
  const keys = Object.keys(labels);
  const hit = v.values.find((x) => keys.every((k) => x.labels[k] === labels[k]));
  return hit?.value ?? 0;
}

/** Resolves with the arguments of the next `event` that satisfies `pred`. */
export function nextEvent<A extends unknown[]>(
  em: EventEmitter,
  event: string,
  pred: (...args: A) => boolean = () => true,
): Promise<A> {
  return new Promise((resolve) => {
    const on = (...args: unknown[]) => {
      if (pred(...(args as A))) {
        em.off(event, on);
        resolve(args as A);
      }
    };
    em.on(event, on);
  });
}

/**
 * Writes a user-provided CA into `dir` in istiod's plug-in layout, made the
 * way an operator's own tooling would: a root (RSA with a PKCS#1 key file, or
 * P-256 with a SEC1 key file) and, optionally, an intermediate that signs.
 */
export async function writeUserCa(
  dir: string,
  opts: { rsaRoot?: boolean; intermediate?: boolean } = {},
): Promise<{ rootPem: string; caCertPem: string }> {
  const now = Date.now();
  const rootKeyPem = opts.rsaRoot
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
        .privateKey.export({ type: "pkcs1", format: "pem" })
        .toString()
    : generateKeyPairSync("ec", { namedCurve: "P-256" })
        .privateKey.export({ type: "sec1", format: "pem" })
        .toString();
  const rootKeys = await importPrivateKeyPem(rootKeyPem);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: "O=Example Corp, CN=Example Root CA",
    keys: { privateKey: rootKeys.privateKey, publicKey: rootKeys.publicKey } as never,
    signingAlgorithm: rootKeys.algorithm,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey as never),
    ],
  });
  const rootPem = root.toString("pem");
  if (!opts.intermediate) {
    await writeFile(join(dir, "ca-cert.pem"), `${rootPem}\n`);
    await writeFile(join(dir, "ca-key.pem"), rootKeyPem, { mode: 0o600 });
    return { rootPem, caCertPem: rootPem };
  }
  const interKeyPem = generateKeyPairSync("ec", { namedCurve: "P-256" })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
  const interKeys = await importPrivateKeyPem(interKeyPem);
  const rootSki = root.getExtension(x509.SubjectKeyIdentifierExtension);
  const inter = await x509.X509CertificateGenerator.create({
    subject: "O=Example Corp, CN=Example Mesh Intermediate",
    issuer: root.subjectName,
    publicKey: interKeys.publicKey as never,
    signingKey: rootKeys.privateKey as never,
    signingAlgorithm: rootKeys.algorithm,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 20 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey as never),
      ...(rootSki ? [new x509.AuthorityKeyIdentifierExtension(rootSki.keyId)] : []),
    ],
  });
  const interPem = inter.toString("pem");
  await writeFile(join(dir, "ca-cert.pem"), `${interPem}\n`);
  await writeFile(
    join(dir, "ca-key.pem"),
    createPrivateKey(interKeyPem).export({ type: "sec1", format: "pem" }).toString(),
    { mode: 0o600 },
  );
  await writeFile(join(dir, "root-cert.pem"), `${rootPem}\n`);
  await writeFile(join(dir, "cert-chain.pem"), `${interPem}\n${rootPem}\n`);
  return { rootPem, caCertPem: interPem };
}

// Shared pieces of the CA tests: a real CertificateAuthority in a temporary
// directory, served by a real grpc-js server on a loopback port (plaintext as
// 15010, or TLS as 15012 with a serving certificate from the CA itself).
import type { EventEmitter } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { Counter } from "prom-client";
import { CertificateAuthority } from "../../controller/ca/authority.js";
import { StaticTokenAuthenticator } from "../../controller/ca/authn.js";
import type { PodIdentity } from "../../controller/ca/authz.js";
import { register } from "../../controller/ca/service.js";

export const TD = "cluster.local";
export const NODE1_TOKEN = "node-1-token-0123456789abcdef";
export const NODE2_TOKEN = "node-2-token-0123456789abcdef";

/** A temporary directory removed when the test ends. */
export async function tempDir(t: { teardown(fn: () => unknown): void }, prefix = "ambit-ca-"): Promise<string> {
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
}

async function bind(server: grpc.Server, port: number, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
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
  const authenticator = new StaticTokenAuthenticator({ [NODE1_TOKEN]: "node-1", [NODE2_TOKEN]: "node-2" });
  let creds = grpc.ServerCredentials.createInsecure();
  if (opts.tls) {
    const serving = await ca.issueServing({ dnsNames: ["localhost", "ambit-controller.ambit-system.svc"], ips: ["127.0.0.1"] });
    creds = grpc.ServerCredentials.createSsl(null, [
      { private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certChainPem.join("\n")) },
    ]);
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
export function nextEvent<A extends unknown[]>(em: EventEmitter, event: string, pred: (...args: A) => boolean = () => true): Promise<A> {
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

// Shared pieces of the xDS tests: a real gRPC server on a loopback port with a
// DeltaAdsServer, model fixtures packed as Any, and waiting on events.
import type { EventEmitter } from "node:events";
import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  adsGrpcServerOptions,
  DeltaAdsServer,
  type DeltaAdsServerOptions,
} from "../../controller/push/server.js";
import { AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";
import { setLevel } from "../../core/telemetry/logger.js";
import {
  addressAliases,
  serviceToAddress,
  workloadToAddress,
  workloadUid,
} from "../../core/xds/codec-address.js";
import { policyToProto } from "../../core/xds/codec-authz.js";

// Quiet tests; AMBIT_TEST_LOG=debug shows the xDS conversation.
setLevel((process.env.AMBIT_TEST_LOG as "debug" | undefined) ?? "error");

export interface RunningAds {
  ads: DeltaAdsServer;
  server: grpc.Server;
  port: number;
  address: string;
  /** Abrupt stop, as a killed controller. */
  kill(): void;
  close(): Promise<void>;
}

export async function startAds(port = 0, opts: DeltaAdsServerOptions = {}): Promise<RunningAds> {
  const server = new grpc.Server(adsGrpcServerOptions);
  const ads = new DeltaAdsServer({ debounceMs: 2, ...opts });
  ads.register(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  let stopped = false;
  return {
    ads,
    server,
    port: bound,
    address: `127.0.0.1:${bound}`,
    kill() {
      if (stopped) return;
      stopped = true;
      server.forceShutdown();
    },
    async close() {
      if (stopped) return;
      stopped = true;
      await ads.close();
      server.forceShutdown();
    },
  };
}

/** Resolves with the first emission of `event` whose arguments satisfy `pred`. */
export function nextEvent<T = unknown>(
  em: EventEmitter,
  event: string,
  pred: (arg: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => {
    const on = (arg: T) => {
      if (!pred(arg)) return;
      em.off(event, on);
      resolve(arg);
    };
    em.on(event, on);
  });
}

export function pod(name: string, ip: string, over: Partial<MeshWorkload> = {}): MeshWorkload {
  return {
    uid: workloadUid("Kubernetes", "demo", name),
    name,
    namespace: "demo",
    ips: [ip],
    node: "node-1",
    serviceAccount: "default",
    trustDomain: "cluster.local",
    tunnel: "hbone",
    services: {},
    healthy: true,
    canonicalName: name,
    canonicalRevision: "latest",
    workloadName: name,
    workloadType: "pod",
    clusterId: "Kubernetes",
    network: "",
    authorizationPolicies: [],
    ...over,
  };
}

export function svc(name: string, vip: string): MeshService {
  return {
    key: `demo/${name}.demo.svc.cluster.local`,
    name,
    namespace: "demo",
    hostname: `${name}.demo.svc.cluster.local`,
    vips: [vip],
    ports: [{ port: 80, targetPort: 8080, appProtocol: "http" }],
  };
}

export function policy(name: string, port: number): AuthzPolicy {
  return {
    name,
    namespace: "demo",
    scope: "namespace",
    action: "deny",
    dryRun: false,
    rules: [{ clauses: [{ matches: [{ destinationPorts: [port] }] }] }],
  };
}

/** Address resources keyed by resource name (and their aliases), as the controller publishes them. */
export function addressSet(items: (MeshWorkload | MeshService)[]): {
  resources: Map<string, Any>;
  aliases: Map<string, string[]>;
} {
  const resources = new Map<string, Any>();
  const aliases = new Map<string, string[]>();
  for (const x of items) {
    const name = "uid" in x ? x.uid : x.key;
    resources.set(name, anyPack(AddressSchema, "uid" in x ? workloadToAddress(x) : serviceToAddress(x)));
    aliases.set(name, addressAliases(x));
  }
  return { resources, aliases };
}

export function policySet(items: AuthzPolicy[]): Map<string, Any> {
  return new Map(
    items.map((p) => [`${p.namespace}/${p.name}`, anyPack(AuthorizationSchema, policyToProto(p))]),
  );
}

/** Records every ACK the server sees, so a test can wait for the server to have seen a given nonce. */
export function serverAcks(ads: DeltaAdsServer): { seen(nonce: string): Promise<void> } {
  const nonces = new Set<string>();
  const waiters = new Map<string, () => void>();
  ads.on("ack", (e: { nonce: string }) => {
    nonces.add(e.nonce);
    waiters.get(e.nonce)?.();
  });
  return {
    seen(nonce) {
      if (nonces.has(nonce)) return Promise.resolve();
      return new Promise((resolve) => waiters.set(nonce, resolve));
    },
  };
}

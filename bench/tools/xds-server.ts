// Scenario 6's server side, in a process of its own so that its RSS is the
// server's alone: the controller's DeltaAdsServer on a loopback port, driven
// by the harness over IPC. For each command it publishes a set of pod
// workloads (istio.workload.Address) and answers when every connected
// subscriber has ACKed it, with the time from publish() to the last ACK.
//   → {cmd:"publish", pods, subscribers, generation}   ← {ms, rssMB}
//   → {cmd:"stop"}

import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { DeltaAdsServer } from "../../controller/push/server.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import type { MeshWorkload } from "../../core/model/types.js";
import { logger } from "../../core/telemetry/logger.js";
import { addressAliases, workloadToAddress, workloadUid } from "../../core/xds/codec-address.js";
import { ADDRESS_TYPE } from "../../core/xds/type-urls.js";

export interface PublishCommand {
  cmd: "publish";
  pods: number;
  subscribers: number;
  /** Bumped to change one pod (index = generation % pods) without changing the set. */
  generation: number;
}

export type ServerReply =
  | { type: "listening"; port: number }
  | { type: "published"; ms: number; rssMB: number; cpuMs: number }
  | { type: "error"; message: string };

/** A pod as the translator would produce it: one IP, one Service port, enrolled. */
export function benchWorkload(i: number, pods: number, generation: number): MeshWorkload {
  const ns = `bench-${pods}`;
  const name = `pod-${i}`;
  return {
    uid: workloadUid("Kubernetes", ns, name),
    name,
    namespace: ns,
    ips: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
    node: `node-${i % 100}`,
    serviceAccount: "default",
    trustDomain: "cluster.local",
    tunnel: "hbone",
    services: { [`${ns}/svc-${i % 50}.${ns}.svc.cluster.local`]: [{ servicePort: 80, targetPort: 8080 }] },
    healthy: true,
    canonicalName: `app-${i % 50}`,
    canonicalRevision: `r${generation}`,
    workloadName: `app-${i % 50}`,
    workloadType: "deployment",
    clusterId: "Kubernetes",
    network: "",
    authorizationPolicies: [],
  };
}

interface ResourceSet {
  resources: Map<string, Any>;
  aliases: Map<string, string[]>;
}

/**
 * The set the controller's ModelPublisher would hand to publish(): after the
 * first, an unchanged pod keeps its Any and its aliases array (ResourceCache
 * keeps both per object), only the changed pod gets new ones.
 */
function buildSet(pods: number, generation: number, prev?: ResourceSet): ResourceSet {
  const resources = new Map<string, Any>();
  const aliases = new Map<string, string[]>();
  const changed = pods > 0 ? generation % pods : -1;
  for (let i = 0; i < pods; i++) {
    // A fresh name string per translation, as ResourceCache.build makes.
    const w = benchWorkload(i, pods, i === changed ? generation : 0);
    const any = i === changed ? undefined : prev?.resources.get(w.uid);
    const al = i === changed ? undefined : prev?.aliases.get(w.uid);
    aliases.set(w.uid, al ?? addressAliases(w));
    resources.set(w.uid, any ?? anyPack(AddressSchema, workloadToAddress(w)));
  }
  return { resources, aliases };
}

async function main(): Promise<void> {
  const send = (m: ServerReply) => process.send?.(m);
  const ads = new DeltaAdsServer({ logger: logger("bench.xds-server") });
  const server = new grpc.Server({ "grpc.max_send_message_length": -1 });
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  // Subscribers get their first (empty) response at once.
  ads.publish(ADDRESS_TYPE, new Map());
  send({ type: "listening", port });

  let current: { pods: number; set: ResourceSet } | undefined;
  const allAcked = (subscribers: number) => {
    const conns = ads.connections();
    return (
      conns.length >= subscribers &&
      conns.every((c) => c.types.every((t) => t.typeUrl !== ADDRESS_TYPE || t.inSync))
    );
  };
  // connections() walks every stream: check it only once each subscriber has ACKed since the publish.
  const waitAcked = (subscribers: number) =>
    new Promise<void>((resolve) => {
      // Streams in sync already (their ACK came before this wait began) count as ACKed.
      const acked = new Set<number>(
        ads
          .connections()
          .filter((c) => c.types.every((t) => t.typeUrl !== ADDRESS_TYPE || t.inSync))
          .map((c) => c.id),
      );
      const check = (ev?: { id: number; typeUrl: string }) => {
        if (ev && ev.typeUrl === ADDRESS_TYPE) acked.add(ev.id);
        if (ev && acked.size < subscribers) return;
        if (!allAcked(subscribers)) return;
        ads.off("ack", check);
        resolve();
      };
      ads.on("ack", check);
      check();
    });

  process.on("message", (m: PublishCommand | { cmd: "stop" }) => {
    if (m.cmd === "stop") {
      void ads.close().then(() => server.tryShutdown(() => process.exit(0)));
      return;
    }
    void (async () => {
      // Built before the clock starts: translation is not what this measures.
      const set =
        current && current.pods === m.pods && m.generation > 0
          ? buildSet(m.pods, m.generation, current.set)
          : buildSet(m.pods, m.generation);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      ads.publish(ADDRESS_TYPE, set.resources, set.aliases);
      await waitAcked(m.subscribers);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      current = { pods: m.pods, set };
      send({
        type: "published",
        ms,
        rssMB: process.memoryUsage.rss() / 2 ** 20,
        // On a shared machine the clock moves with the load; CPU time much less.
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    })().catch((err: unknown) => send({ type: "error", message: String(err) }));
  });
}

main().catch((err: unknown) => {
  process.send?.({ type: "error", message: String(err) });
  process.exit(1);
});

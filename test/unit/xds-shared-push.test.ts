// The push server's shared responses: wildcard streams that hold the same
// generation get one encoded response (same nonce, same bytes) rather than one
// each; streams whose state is their own (initial versions, named
// subscriptions) are reconciled one by one. And ModelPublisher, the
// controller's translate → publish step: only changed objects are encoded, an
// object that cannot be encoded is reported by name and field, not published.
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import t from "tap";
import { ModelPublisher } from "../../controller/push/publish-model.js";
import {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
} from "../../core/gen/xds_pb.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, pod, policy, type RunningAds, serverAcks, startAds, svc } from "./xds-harness.js";

const RawClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(AggregatedDiscoveryService),
  "AggregatedDiscoveryService",
);

function rawStream(t: { teardown(fn: () => unknown): void }, srv: RunningAds) {
  const client = new RawClient(srv.address, grpc.credentials.createInsecure());
  const call = (
    client as unknown as {
      deltaAggregatedResources(): grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
    }
  ).deltaAggregatedResources();
  call.on("error", () => {});
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  const it = call[Symbol.asyncIterator]();
  return {
    async next(): Promise<DeltaDiscoveryResponse> {
      const r = await it.next();
      if (r.done) throw new Error("stream ended");
      return r.value as DeltaDiscoveryResponse;
    },
    send(init: Parameters<typeof create<typeof DeltaDiscoveryRequestSchema>>[1]) {
      call.write(create(DeltaDiscoveryRequestSchema, init));
    },
    ack(r: DeltaDiscoveryResponse) {
      call.write(create(DeltaDiscoveryRequestSchema, { typeUrl: r.typeUrl, responseNonce: r.nonce }));
    },
  };
}

const names = (r: DeltaDiscoveryResponse) => r.resources.map((x) => x.name).sort();
const a = pod("a", "10.244.1.1");
const b = pod("b", "10.244.1.2");
const c = pod("c", "10.244.1.3");

t.test("streams at the same generation share one response; others get their own", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const acks = serverAcks(srv.ads);
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, b]).resources);
  const streams = [rawStream(t, srv), rawStream(t, srv), rawStream(t, srv)];
  for (const [i, s] of streams.entries()) s.send({ node: { id: `ztunnel~${i}` }, typeUrl: ADDRESS_TYPE });
  const first = await Promise.all(streams.map((s) => s.next()));
  t.same(
    first.map(names),
    first.map(() => [a.uid, b.uid].sort()),
    "everyone gets the full set",
  );
  t.equal(new Set(first.map((r) => r.nonce)).size, 1, "one shared response");
  for (const [i, s] of streams.entries()) s.ack(first[i]!);
  await acks.seen(first[0]!.nonce);

  // One stream adds a named subscription: its state is its own from then on.
  const named = streams[2]!;
  named.send({ typeUrl: ADDRESS_TYPE, resourceNamesSubscribe: ["demo/missing"] });
  const probe = await named.next();
  t.same(probe.removedResources, ["demo/missing"], "a missing name is answered as removed");
  named.ack(probe);
  await acks.seen(probe.nonce);

  const b2 = pod("b", "10.244.1.22");
  srv.ads.publish(ADDRESS_TYPE, addressSet([b2, c]).resources);
  const second = await Promise.all(streams.map((s) => s.next()));
  for (const r of second) {
    t.same(names(r), [b.uid, c.uid].sort(), "changed and new");
    t.same(r.removedResources, [a.uid], "removed");
  }
  t.equal(second[0]!.nonce, second[1]!.nonce, "the two wildcard-only streams share");
  t.not(second[2]!.nonce, second[0]!.nonce, "the stream with a named subscription does not");
  t.not(second[0]!.nonce, first[0]!.nonce, "a new nonce per response");

  // Copy on write: a stream that drops its wildcard forgets its resources, the others keep theirs.
  for (const [i, s] of streams.entries()) s.ack(second[i]!);
  // (Shared nonces: wait on the server's view rather than on one ACK per nonce.)
  await new Promise<void>((resolve) => {
    const poll = () =>
      srv.ads.connections().every((c) => c.types.every((x) => !x.awaitingAck))
        ? resolve()
        : setImmediate(poll);
    poll();
  });
  const idOf = (node: string) => srv.ads.connections().find((c) => c.nodeId === node)?.id ?? -1;
  streams[1]!.send({ typeUrl: ADDRESS_TYPE, resourceNamesUnsubscribe: ["*"] });
  await t.resolveMatch(
    new Promise((resolve) => {
      const poll = () =>
        srv.ads.ackedVersions(idOf("ztunnel~1"), ADDRESS_TYPE).size === 0
          ? resolve(true)
          : setImmediate(poll);
      poll();
    }),
    true,
  );
  t.same(
    [...srv.ads.ackedVersions(idOf("ztunnel~0"), ADDRESS_TYPE).keys()].sort(),
    [b.uid, c.uid].sort(),
    "stream 0 unaffected",
  );

  // A proxy reconnecting with what it holds gets only the difference, not the shared full set.
  const versions = srv.ads.resources(ADDRESS_TYPE);
  const again = rawStream(t, srv);
  again.send({ typeUrl: ADDRESS_TYPE, initialResourceVersions: { [c.uid]: versions.get(c.uid)!.version } });
  const r = await again.next();
  t.same(names(r), [b.uid]);
  // A fresh one gets the current full set, shared with any other fresh one.
  const fresh = rawStream(t, srv);
  fresh.send({ typeUrl: ADDRESS_TYPE });
  t.same(names(await fresh.next()), [b.uid, c.uid].sort());
});

t.test("an alias change alone reaches the proxies (versions cover aliases)", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const s1 = svc("web", "10.96.0.10");
  const set1 = addressSet([s1]);
  srv.ads.publish(ADDRESS_TYPE, set1.resources, new Map([[s1.key, ["/10.96.0.10"]]]));
  const raw = rawStream(t, srv);
  raw.send({ typeUrl: ADDRESS_TYPE });
  const r1 = await raw.next();
  raw.ack(r1);
  srv.ads.publish(ADDRESS_TYPE, set1.resources, new Map([[s1.key, ["/10.96.0.10", "/10.96.0.11"]]]));
  const r2 = await raw.next();
  t.same(r2.resources[0]?.aliases, ["/10.96.0.10", "/10.96.0.11"]);
  t.not(r2.resources[0]?.version, r1.resources[0]?.version);
});

t.test("ModelPublisher encodes only what changed and reports what cannot be encoded", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const pub = new ModelPublisher(srv.ads);
  const web = svc("web", "10.96.0.10");
  const p1 = policy("deny-9090", 9090);
  const s1 = pub.publish({ workloads: [a, b], services: [web], policies: [p1] });
  t.equal(s1.encoded, 4);
  t.same(s1.rejected, []);
  const before = srv.ads.resources(ADDRESS_TYPE).get(a.uid);
  // A fresh translation: new objects, same content but for b.
  const s2 = pub.publish({
    workloads: [{ ...a }, pod("b", "10.244.1.9"), pod("bad", "10.244.1.300")],
    services: [{ ...web }],
    policies: [{ ...p1 }],
  });
  t.equal(s2.encoded, 2, "b changed, bad attempted");
  t.equal(s2.rejected.length, 1);
  t.match(s2.rejected[0], { code: "XDS_REJECTED", message: /bad.*ips\[0\]/ });
  t.equal(srv.ads.resources(ADDRESS_TYPE).get(a.uid), before, "unchanged entry kept as is");
  t.notOk(srv.ads.resources(ADDRESS_TYPE).has(pod("bad", "").uid), "not published");
  t.same([...srv.ads.resources(AUTHORIZATION_TYPE).keys()], ["demo/deny-9090"]);
});

// The delta ADS server seen from a raw grpc-js bidi stream built only from
// the generated protos: nonces, versions, ACK gating and coalescing,
// removed_resources, wildcard and named subscriptions, aliases,
// initial_resource_versions, NACKs, and a stalled proxy not blocking others.
import { create } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import t from "tap";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
} from "../../core/gen/xds_pb.js";
import { registry } from "../../core/telemetry/metrics.js";
import { DeltaAdsClient, type XdsUpdate } from "../../core/xds/client.js";
import { grpcServiceDefinition } from "../../core/xds/grpc-service.js";
import { ADDRESS_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, nextEvent, pod, type RunningAds, serverAcks, startAds, svc } from "./xds-harness.js";

const RawClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(AggregatedDiscoveryService),
  "AggregatedDiscoveryService",
);

interface RawStream {
  call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  next(): Promise<DeltaDiscoveryResponse>;
  send(init: Parameters<typeof create<typeof DeltaDiscoveryRequestSchema>>[1]): void;
  ack(r: DeltaDiscoveryResponse): void;
}

function rawStream(t: { teardown(fn: () => unknown): void }, srv: RunningAds): RawStream {
  const client = new RawClient(srv.address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 256 * 1024 * 1024,
  });
  const call = (
    client as unknown as { deltaAggregatedResources(): RawStream["call"] }
  ).deltaAggregatedResources();
  call.on("error", () => {});
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  const it = call[Symbol.asyncIterator]();
  return {
    call,
    async next() {
      const r = await it.next();
      if (r.done) throw new Error("stream ended");
      return r.value as DeltaDiscoveryResponse;
    },
    send(init) {
      call.write(create(DeltaDiscoveryRequestSchema, init));
    },
    ack(r) {
      call.write(create(DeltaDiscoveryRequestSchema, { typeUrl: r.typeUrl, responseNonce: r.nonce }));
    },
  };
}

const a = pod("a", "10.244.1.1");
const b = pod("b", "10.244.1.2");
const c = pod("c", "10.244.1.3");
const s = svc("server", "10.96.0.10");
const resNames = (r: DeltaDiscoveryResponse) => r.resources.map((x) => x.name).sort();

t.test("wildcard stream: nonces, versions, ACK gating with coalescing, removals, NACK", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const set = addressSet([a, b, s]);
  srv.ads.publish(ADDRESS_TYPE, set.resources, set.aliases);
  const raw = rawStream(t, srv);
  const connected = nextEvent<{ nodeName?: string }>(srv.ads, "connect");
  raw.send({
    node: {
      id: "ztunnel~10.0.0.7~ztunnel-abc.istio-system~istio-system.svc.cluster.local",
      metadata: { NODE_NAME: "node-7" },
    },
    typeUrl: ADDRESS_TYPE,
  });
  t.equal((await connected).nodeName, "node-7");

  const r1 = await raw.next();
  t.equal(r1.typeUrl, ADDRESS_TYPE);
  t.ok(r1.nonce, "nonce set");
  t.ok(r1.systemVersionInfo, "system version set");
  t.same(resNames(r1), [a.uid, b.uid, s.key].sort());
  t.same(r1.removedResources, []);
  const published = srv.ads.resources(ADDRESS_TYPE);
  for (const r of r1.resources) {
    t.equal(r.version, published.get(r.name)?.version, `version of ${r.name}`);
    t.equal(r.resource?.typeUrl, ADDRESS_TYPE);
    t.equal(anyUnpack(r.resource!, AddressSchema)?.type.case, r.name === s.key ? "service" : "workload");
  }
  t.same(r1.resources.find((r) => r.name === a.uid)?.aliases, ["/10.244.1.1"]);

  // Two changes before the ACK: nothing is sent until the ACK, then both in one response.
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.11"), b, s]).resources, set.aliases);
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.11"), b, s, c]).resources, set.aliases);
  t.equal(srv.ads.connections()[0]?.types[0]?.awaitingAck, true);
  raw.ack(r1);
  const r2 = await raw.next();
  t.same(resNames(r2), [a.uid, c.uid].sort(), "coalesced delta");
  t.not(r2.nonce, r1.nonce);
  t.not(
    r2.resources.find((r) => r.name === a.uid)?.version,
    r1.resources.find((r) => r.name === a.uid)?.version,
  );

  // A removal.
  raw.ack(r2);
  // (Same aliases as before: an alias change alone is a change too.)
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.11"), b, c]).resources, set.aliases);
  const r3 = await raw.next();
  t.same(r3.resources, []);
  t.same(r3.removedResources, [s.key]);

  // A stale nonce is no ACK.
  const acks = serverAcks(srv.ads);
  raw.send({ typeUrl: ADDRESS_TYPE, responseNonce: r1.nonce });
  t.equal(srv.ads.connections()[0]?.types[0]?.awaitingAck, true);

  // NACK: counted, the rejected version is not resent, later changes flow.
  const nacked = nextEvent<{ message: string }>(srv.ads, "nack");
  raw.send({
    typeUrl: ADDRESS_TYPE,
    responseNonce: r3.nonce,
    errorDetail: { code: 3, message: "cannot apply" },
  });
  t.equal((await nacked).message, "cannot apply");
  srv.ads.publish(
    ADDRESS_TYPE,
    addressSet([pod("a", "10.244.1.11"), b, c, pod("d", "10.244.1.4")]).resources,
    set.aliases,
  );
  const r4 = await raw.next();
  t.same(resNames(r4), [pod("d", "").uid]);
  t.same(r4.removedResources, []);
  raw.ack(r4);
  await acks.seen(r4.nonce);
  const info = srv.ads.connections()[0]?.types[0];
  t.equal(info?.nacks, 1);
  t.equal(info?.lastNack?.message, "cannot apply");
  t.equal(info?.acks, 3, "r1, r2, r4 (the stale nonce did not count)");
  t.equal(info?.inSync, false, "the proxy never ACKed the removal of the service");
  const held = srv.ads.ackedVersions(info ? srv.ads.connections()[0]!.id : -1, ADDRESS_TYPE);
  t.equal(
    held.get(s.key),
    r1.resources.find((r) => r.name === s.key)?.version,
    "the proxy kept the service it NACKed the removal of",
  );
  t.equal(held.get(pod("d", "").uid), r4.resources[0]?.version);
  t.equal(info?.resources, 5);

  // Metrics: pushes and push durations are counted per type.
  const pushes = await registry.getSingleMetric("ambit_xds_pushes_total")!.get();
  t.ok((pushes.values.find((v) => v.labels.type === "istio.workload.Address")?.value ?? 0) >= 4);
  const durations = await registry.getSingleMetric("ambit_xds_push_duration_seconds")!.get();
  t.ok(
    (durations.values as { labels: Record<string, unknown>; value: number; metricName?: string }[]).some(
      (v) => v.labels.type === "istio.workload.Address" && v.metricName?.endsWith("_count") && v.value >= 3,
    ),
  );
  const proxies = await registry.getSingleMetric("ambit_xds_connected_proxies")!.get();
  t.equal(proxies.values[0]?.value, 1);
});

t.test("named subscriptions, aliases, missing names, subscribe and unsubscribe later", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const set = addressSet([a, b, c, s]);
  srv.ads.publish(ADDRESS_TYPE, set.resources, set.aliases);
  const raw = rawStream(t, srv);
  raw.send({
    node: { id: "waypoint~x" },
    typeUrl: ADDRESS_TYPE,
    resourceNamesSubscribe: [a.uid, "/10.244.1.2", "demo/missing"],
  });
  const r1 = await raw.next();
  t.same(resNames(r1), [a.uid, b.uid].sort(), "b found by its alias, under its own name");
  t.same(r1.removedResources, ["demo/missing"], "a missing name is reported as not existing");
  raw.ack(r1);

  // c is not subscribed: a change to a and c sends only a.
  srv.ads.publish(
    ADDRESS_TYPE,
    addressSet([pod("a", "10.244.1.11"), b, pod("c", "10.244.1.33"), s]).resources,
    set.aliases,
  );
  const r2 = await raw.next();
  t.same(resNames(r2), [a.uid]);
  raw.ack(r2);

  // Subscribe to c later; unsubscribe a.
  raw.send({ typeUrl: ADDRESS_TYPE, resourceNamesSubscribe: [c.uid], resourceNamesUnsubscribe: [a.uid] });
  const r3 = await raw.next();
  t.same(resNames(r3), [c.uid]);
  t.same(r3.removedResources, []);
  raw.ack(r3);
  srv.ads.publish(
    ADDRESS_TYPE,
    addressSet([pod("a", "10.244.1.111"), pod("b", "10.244.1.22"), pod("c", "10.244.1.33"), s]).resources,
    set.aliases,
  );
  const r4 = await raw.next();
  t.same(resNames(r4), [b.uid], "a no longer subscribed");
});

t.test("explicit * wildcard and initial_resource_versions", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, b, c, s]).resources);
  const versions = srv.ads.resources(ADDRESS_TYPE);
  const raw = rawStream(t, srv);
  raw.send({
    node: { id: "ztunnel~again" },
    typeUrl: ADDRESS_TYPE,
    resourceNamesSubscribe: ["*"],
    initialResourceVersions: {
      [a.uid]: versions.get(a.uid)!.version,
      [s.key]: versions.get(s.key)!.version,
      [b.uid]: "stale",
      "Kubernetes//v1/Pod/demo/gone": "v1",
    },
  });
  const r1 = await raw.next();
  t.same(resNames(r1), [b.uid, c.uid].sort(), "only what differs");
  t.same(r1.removedResources, ["Kubernetes//v1/Pod/demo/gone"]);

  // Istio's ztunnel reports what it holds with empty versions: everything it has is resent, gone names removed.
  const istioLike = rawStream(t, srv);
  istioLike.send({
    typeUrl: ADDRESS_TYPE,
    initialResourceVersions: { [a.uid]: "", "Kubernetes//v1/Pod/demo/gone": "" },
  });
  const i1 = await istioLike.next();
  t.same(resNames(i1), [a.uid, b.uid, c.uid, s.key].sort());
  t.same(i1.removedResources, ["Kubernetes//v1/Pod/demo/gone"]);

  // Everything up to date: the first response is still sent, empty.
  const raw2 = rawStream(t, srv);
  raw2.send({
    typeUrl: ADDRESS_TYPE,
    initialResourceVersions: Object.fromEntries([...versions.values()].map((e) => [e.name, e.version])),
  });
  const e1 = await raw2.next();
  t.same(e1.resources, []);
  t.same(e1.removedResources, []);
  t.ok(e1.nonce);
});

t.test("a burst of publishes goes out as one response", async (t) => {
  const srv = await startAds(0, { debounceMs: 20 });
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a]).resources);
  const updates: XdsUpdate[] = [];
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~burst" },
    handlers: [{ typeUrl: ADDRESS_TYPE, apply: (u) => void updates.push(u) }],
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  const acked = nextEvent(client, "ack");
  for (let i = 0; i < 50; i++)
    srv.ads.publish(ADDRESS_TYPE, addressSet([a, pod("burst", `10.244.2.${i}`)]).resources);
  await acked;
  t.equal(updates.length, 2);
  t.same(
    updates[1]?.added.map((x) => x.name),
    [pod("burst", "").uid],
  );
  const last = anyUnpack(updates[1]!.added[0]!.resource, AddressSchema);
  t.same(
    last?.type.case === "workload" ? [...last.type.value.addresses[0]!] : [],
    [10, 244, 2, 49],
    "the final state",
  );
});

t.test("a stalled proxy does not block the others, and gets one coalesced delta when it wakes", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  // Enough data (over a MB) that a proxy that never reads exhausts HTTP/2 flow control.
  const many = Array.from({ length: 3000 }, (_, i) =>
    pod(`p${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, {
      authorizationPolicies: Array.from({ length: 12 }, (_, j) => `demo/some-long-policy-name-${j}`),
    }),
  );
  srv.ads.publish(ADDRESS_TYPE, addressSet(many).resources);

  const stalled = rawStream(t, srv);
  stalled.call.pause();
  const stalledConnected = nextEvent(srv.ads, "connect");
  stalled.send({ node: { id: "ztunnel~stalled" }, typeUrl: ADDRESS_TYPE });
  await stalledConnected;

  const updates: XdsUpdate[] = [];
  const good = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~good" },
    handlers: [{ typeUrl: ADDRESS_TYPE, apply: (u) => void updates.push(u) }],
  });
  t.teardown(() => good.close());
  good.start();
  await good.ready();
  t.equal(updates[0]?.added.length, many.length);

  let current = many;
  for (let round = 0; round < 5; round++) {
    current = current.map((p, i) => (i === round ? { ...p, ips: [`10.200.0.${round}`] } : p));
    const acked = nextEvent(good, "ack");
    srv.ads.publish(ADDRESS_TYPE, addressSet(current).resources);
    await acked;
    t.same(
      updates.at(-1)?.added.map((x) => x.name),
      [many[round]!.uid],
      `round ${round} reached the good proxy`,
    );
  }
  const stalledInfo = srv.ads.connections().find((x) => x.nodeId === "ztunnel~stalled");
  t.equal(stalledInfo?.types[0]?.awaitingAck, true, "the stalled proxy still owes its first ACK");

  // The stalled proxy wakes up: its first response, then one response with all five changes.
  stalled.call.resume();
  const first = await stalled.next();
  t.equal(first.resources.length, many.length);
  stalled.ack(first);
  const coalesced = await stalled.next();
  t.same(
    resNames(coalesced),
    many
      .slice(0, 5)
      .map((p) => p.uid)
      .sort(),
  );
});

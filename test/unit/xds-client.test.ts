// DeltaAdsServer ↔ DeltaAdsClient over real gRPC on loopback: full state,
// exact deltas, NACKs (counted server-side, other types unaffected),
// reconnect after the server is killed, and initial_resource_versions.
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import type { MeshWorkload } from "../../core/model/types.js";
import { registry } from "../../core/telemetry/metrics.js";
import { DeltaAdsClient, type XdsTypeHandler, type XdsUpdate } from "../../core/xds/client.js";
import { addressFromProto, type DecodedAddress } from "../../core/xds/codec-address.js";
import { policyFromProto } from "../../core/xds/codec-authz.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, nextEvent, pod, policy, policySet, serverAcks, startAds, svc } from "./xds-harness.js";

/** A handler as ztunnel's would be: decode, validate, then swap in the new state atomically. */
class Store<T> implements XdsTypeHandler {
  items = new Map<string, T>();
  updates: XdsUpdate[] = [];
  rejectNames = new Set<string>();
  constructor(
    readonly typeUrl: string,
    private readonly decode: (u: XdsUpdate["added"][number]) => T,
  ) {}
  apply(update: XdsUpdate): void {
    const next = new Map(this.items);
    for (const a of update.added) {
      if (this.rejectNames.has(a.name)) throw new Error(`resource ${a.name}: rejected by test`);
      next.set(a.name, this.decode(a));
    }
    for (const n of update.removed) next.delete(n);
    this.items = next;
    this.updates.push(update);
  }
}

function stores() {
  const addresses = new Store<DecodedAddress>(ADDRESS_TYPE, (a) => {
    const msg = anyUnpack(a.resource, AddressSchema);
    if (!msg) throw new Error(`resource ${a.name}: not an Address`);
    return addressFromProto(msg);
  });
  const policies = new Store(AUTHORIZATION_TYPE, (a) =>
    policyFromProto(anyUnpack(a.resource, AuthorizationSchema)!),
  );
  return { addresses, policies };
}

function names(u: XdsUpdate | undefined) {
  return { added: (u?.added ?? []).map((a) => a.name).sort(), removed: [...(u?.removed ?? [])].sort() };
}

const a = pod("a", "10.244.1.1");
const b = pod("b", "10.244.1.2");
const c = pod("c", "fd00::3");
const s = svc("server", "10.96.0.10");

async function nackCount(type: string, reason: string): Promise<number> {
  const m = registry.getSingleMetric("ambit_xds_nacks_total");
  const v = (await m!.get()).values.find((x) => x.labels.type === type && x.labels.reason === reason);
  return v?.value ?? 0;
}

t.test("full state, then exactly the delta", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const initial = addressSet([a, b, c, s]);
  srv.ads.publish(ADDRESS_TYPE, initial.resources, initial.aliases);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([policy("deny-9090", 9090)]));

  const { addresses, policies } = stores();
  const client = new DeltaAdsClient({
    address: srv.address,
    node: {
      id: "ztunnel~10.0.0.1~ztunnel-x.istio-system~istio-system.svc.cluster.local",
      metadata: { NODE_NAME: "node-1" },
    },
    handlers: [addresses, policies],
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  t.same([...addresses.items.keys()].sort(), [a.uid, b.uid, c.uid, s.key].sort());
  t.same(addresses.items.get(c.uid), { kind: "workload", workload: c });
  t.same(addresses.items.get(s.key), { kind: "service", service: s });
  t.same([...policies.items.keys()], ["demo/deny-9090"]);
  t.equal(client.state().connected, true);
  t.equal(client.state().perType[ADDRESS_TYPE]?.resources, 4);

  const conns = srv.ads.connections();
  t.equal(conns.length, 1);
  t.equal(conns[0]?.nodeName, "node-1");
  t.match(conns[0]?.nodeId, /^ztunnel~10\.0\.0\.1~/);

  // b changes, c goes away, a and s stay as they are.
  const before = addresses.updates.length;
  const acks = serverAcks(srv.ads);
  const acked = nextEvent<{ typeUrl: string; nonce: string }>(
    client,
    "ack",
    (e) => e.typeUrl === ADDRESS_TYPE,
  );
  const next = addressSet([a, pod("b", "10.244.1.22"), s]);
  srv.ads.publish(ADDRESS_TYPE, next.resources, next.aliases);
  await acks.seen((await acked).nonce);
  t.equal(addresses.updates.length, before + 1);
  t.same(names(addresses.updates.at(-1)), { added: [b.uid], removed: [c.uid] });
  t.same((addresses.items.get(b.uid) as { workload: { ips: string[] } }).workload.ips, ["10.244.1.22"]);

  // Republishing the same content pushes nothing: the next push carries only the next change.
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, pod("b", "10.244.1.22"), s]).resources, next.aliases);
  const acked2 = nextEvent<{ typeUrl: string; nonce: string }>(
    client,
    "ack",
    (e) => e.typeUrl === ADDRESS_TYPE,
  );
  const third = addressSet([a, pod("b", "10.244.1.22"), s, pod("d", "10.244.1.4")]);
  srv.ads.publish(ADDRESS_TYPE, third.resources, third.aliases);
  await acks.seen((await acked2).nonce);
  t.same(names(addresses.updates.at(-1)), { added: [pod("d", "10.244.1.4").uid], removed: [] });
  t.equal(addresses.updates.length, before + 2);
  t.equal(srv.ads.connections()[0]?.types.find((x) => x.typeUrl === ADDRESS_TYPE)?.inSync, true);
});

t.test("a NACK is counted with the proxy's message; other types and later changes still flow", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  const { addresses, policies } = stores();
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~nack" },
    handlers: [addresses, policies],
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();

  const bad = pod("bad", "10.244.9.9");
  addresses.rejectNames.add(bad.uid);
  const message = `resource ${bad.uid}: rejected by test`;
  const countBefore = await nackCount("istio.workload.Address", message);
  const serverNack = nextEvent<{ message: string; typeUrl: string }>(srv.ads, "nack");
  const clientNack = nextEvent(client, "nack");
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, bad]).resources);
  t.equal((await serverNack).message, message);
  await clientNack;
  t.equal(await nackCount("istio.workload.Address", message), countBefore + 1);
  t.equal(
    srv.ads.connections()[0]?.types.find((x) => x.typeUrl === ADDRESS_TYPE)?.lastNack?.message,
    message,
  );
  t.equal(client.state().perType[ADDRESS_TYPE]?.lastError, message);
  t.notOk(addresses.items.has(bad.uid), "last good state kept");
  t.ok(addresses.items.has(a.uid));

  // Authorization still flows.
  const policyAck = nextEvent(client, "ack", (e: { typeUrl: string }) => e.typeUrl === AUTHORIZATION_TYPE);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([policy("deny-22", 22)]));
  await policyAck;
  t.same([...policies.items.keys()], ["demo/deny-22"]);

  // The next good change is applied, and the rejected version is not resent.
  const addrAck = nextEvent(client, "ack", (e: { typeUrl: string }) => e.typeUrl === ADDRESS_TYPE);
  const e = pod("e", "10.244.1.5");
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, bad, e]).resources);
  await addrAck;
  t.same(names(addresses.updates.at(-1)), { added: [e.uid], removed: [] });
  t.ok(addresses.items.has(e.uid));
  t.equal(client.state().perType[ADDRESS_TYPE]?.nacked, 1);

  // Garbage on the wire (not an Address at all): NACKed with the decoder's message, the stream carries on.
  const garbageNack = nextEvent<{ message: string }>(srv.ads, "nack");
  const garbage = new Map(addressSet([a, bad, e]).resources);
  garbage.set("demo/garbage", {
    $typeName: "google.protobuf.Any",
    typeUrl: ADDRESS_TYPE,
    value: new Uint8Array([0xff, 0xff, 0xff]),
  });
  srv.ads.publish(ADDRESS_TYPE, garbage);
  t.match((await garbageNack).message, /premature EOF|invalid|cannot|wire|out of range/i);
  t.notOk(addresses.items.has("demo/garbage"));
  const recovered = nextEvent(client, "ack", (ev: { typeUrl: string }) => ev.typeUrl === ADDRESS_TYPE);
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, e]).resources);
  await recovered;
  t.same([...addresses.items.keys()].sort(), [a.uid, e.uid].sort());
  const responses = await registry.getSingleMetric("ambit_xds_client_responses_total")!.get();
  t.ok(
    (responses.values.find((v) => v.labels.type === "istio.workload.Address" && v.labels.result === "nack")
      ?.value ?? 0) >= 2,
  );
});

t.test("killed server, restarted on the same port: reconnect, only differences resent", async (t) => {
  let srv = await startAds();
  const port = srv.port;
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, b, s]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([policy("p1", 1)]));
  const { addresses, policies } = stores();
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~reconnect" },
    handlers: [addresses, policies],
    backoff: { initialMs: 20, maxMs: 200 },
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  const snapshot = new Map(addresses.items);

  const disconnected = nextEvent(client, "disconnected");
  srv.kill();
  await disconnected;
  t.equal(client.state().connected, false);
  t.same(addresses.items, snapshot, "state kept while the controller is away");

  // The new controller has: a unchanged, b changed, s removed, c new; policies unchanged.
  srv = await startAds(port);
  const b2 = pod("b", "10.244.1.20");
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, b2, c]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([policy("p1", 1)]));
  const updatesBefore = addresses.updates.length;
  const policyUpdatesBefore = policies.updates.length;
  const resynced = nextEvent(client, "ack", (e: { typeUrl: string }) => e.typeUrl === ADDRESS_TYPE);
  const policyResynced = nextEvent(
    client,
    "ack",
    (e: { typeUrl: string }) => e.typeUrl === AUTHORIZATION_TYPE,
  );
  await Promise.all([resynced, policyResynced]);
  t.equal(client.state().connected, true);
  t.equal(addresses.updates.length, updatesBefore + 1);
  t.same(
    names(addresses.updates.at(-1)),
    { added: [b2.uid, c.uid].sort(), removed: [s.key] },
    "only the differences",
  );
  t.same([...addresses.items.keys()].sort(), [a.uid, b2.uid, c.uid].sort(), "full state after resync");
  t.equal(policies.updates.length, policyUpdatesBefore + 1);
  t.same(names(policies.updates.at(-1)), { added: [], removed: [] }, "unchanged policies not resent");
});

t.test("a client that starts before the controller connects when it appears", async (t) => {
  // Find a free port, then release it, so the client has something to retry.
  const probe = await startAds();
  const port = probe.port;
  await probe.close();
  const { addresses, policies } = stores();
  const client = new DeltaAdsClient({
    address: `127.0.0.1:${port}`,
    node: { id: "ztunnel~early" },
    handlers: [addresses, policies],
    backoff: { initialMs: 10, maxMs: 100 },
  });
  t.teardown(() => client.close());
  client.start();
  const srv = await startAds(port);
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  await client.ready();
  t.same([...addresses.items.keys()], [a.uid]);
});

t.test("ready waits until every type is published", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([a]).resources);
  const { addresses, policies } = stores();
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~ready" },
    handlers: [addresses, policies],
  });
  t.teardown(() => client.close());
  let ready = false;
  void client.ready().then(() => {
    ready = true;
  });
  const firstAck = nextEvent(client, "ack");
  client.start();
  await firstAck;
  t.equal(ready, false, "Authorization not yet published");
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  await client.ready();
  t.equal(policies.items.size, 0);
});

t.test("named subscriptions change at run time and survive a reconnect", async (t) => {
  let srv = await startAds();
  const port = srv.port;
  t.teardown(() => srv.close());
  const all = addressSet([a, b, c, s]);
  srv.ads.publish(ADDRESS_TYPE, all.resources, all.aliases);
  const { addresses } = stores();
  const named = Object.assign(addresses, { names: [a.uid] });
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "waypoint~named" },
    handlers: [named],
    backoff: { initialMs: 10, maxMs: 100 },
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  t.same([...addresses.items.keys()], [a.uid]);

  const got = nextEvent(client, "ack");
  client.updateSubscription(ADDRESS_TYPE, { subscribe: ["/10.244.1.2"], unsubscribe: [a.uid] });
  t.same([...addresses.items.keys()], [], "an unsubscribed name is forgotten at once");
  await got;
  t.same([...addresses.items.keys()], [b.uid], "found by alias");
  t.throws(() => client.updateSubscription(AUTHORIZATION_TYPE, { subscribe: ["x"] }), /no handler/);

  // After a restart the client subscribes to what it wants now, and gets only what changed.
  const disconnected = nextEvent(client, "disconnected");
  srv.kill();
  await disconnected;
  srv = await startAds(port);
  const b2 = pod("b", "10.244.1.2", { node: "node-2" });
  const again = addressSet([a, b2, c, s]);
  srv.ads.publish(ADDRESS_TYPE, again.resources, again.aliases);
  const resynced = nextEvent(client, "ack");
  await resynced;
  t.same(names(addresses.updates.at(-1)), { added: [b.uid], removed: [] });
  t.equal((addresses.items.get(b.uid) as { workload: MeshWorkload }).workload.node, "node-2");
  const info = srv.ads.connections()[0]?.types[0];
  t.equal(info?.wildcard, false);
  t.same(info?.names, ["/10.244.1.2"]);
});

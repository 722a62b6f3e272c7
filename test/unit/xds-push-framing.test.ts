// The push server's transport shortcuts, each of which must leave the wire
// as delta xDS expects it: Resources encoded directly (decoded by protobuf-es
// as what create() + toBinary() would give), responses framed once and
// written as the same bytes to every stream (the grpc-js hook is in effect,
// and what each client decodes is right), and a change after a quiet spell
// sent without waiting for the debounce window.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { createHash } from "node:crypto";
import {
  encodeFramedResponse,
  encodeResource,
  resourceVersion,
} from "../../controller/push/response-encoding.js";
import { DeltaDiscoveryResponseSchema, ResourceSchema } from "../../core/gen/xds_pb.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import { DeltaAdsClient, type XdsUpdate } from "../../core/xds/client.js";
import { workloadToAddress } from "../../core/xds/codec-address.js";
import { ADDRESS_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, nextEvent, pod, startAds } from "./xds-harness.js";

t.test("encodeResource: what protobuf-es decodes is what was given", async (t) => {
  const any = anyPack(AddressSchema, workloadToAddress(pod("é-pod", "10.244.9.9")));
  const cases = [
    { name: "Kubernetes//v1/Pod/demo/a", version: "v1", aliases: [] as string[], any },
    { name: "n-ü", version: "", aliases: ["10.0.0.1", "network/ä", ""], any },
    { name: "", version: "x".repeat(300), aliases: [], any: { ...any, value: new Uint8Array(0) } },
    { name: "big", version: "v", aliases: ["a"], any: { ...any, value: new Uint8Array(70_000).fill(3) } },
  ];
  for (const c of cases) {
    const r = fromBinary(ResourceSchema, encodeResource(c.name, c.version, c.aliases, c.any));
    t.equal(r.name, c.name);
    t.equal(r.version, c.version);
    t.same(r.aliases, c.aliases);
    t.equal(r.resource?.typeUrl, c.any.typeUrl);
    t.same([...(r.resource?.value ?? [])], [...c.any.value]);
  }
  const direct = encodeResource("n", "v", ["al"], any);
  t.same(
    [...toBinary(ResourceSchema, fromBinary(ResourceSchema, direct))],
    [
      ...toBinary(
        ResourceSchema,
        create(ResourceSchema, { name: "n", version: "v", aliases: ["al"], resource: any }),
      ),
    ],
    "the same message as protobuf-es builds",
  );
});

t.test(
  "resourceVersion: sha256 of type URL, value and each NUL + alias (stable across releases)",
  async (t) => {
    const any = anyPack(AddressSchema, workloadToAddress(pod("v", "10.244.9.1")));
    const big = { ...any, value: new Uint8Array(200_000).fill(9) };
    for (const [x, aliases] of [
      [any, []],
      [any, ["10.0.0.1", "net/é"]],
      [big, ["a"]],
      [any, [""]],
    ] as const) {
      const h = createHash("sha256").update(x.typeUrl).update(x.value);
      for (const a of aliases) h.update("\u0000").update(a);
      t.equal(resourceVersion(x, aliases), h.digest("base64url").slice(0, 16));
    }
    t.not(resourceVersion(any, ["a"]), resourceVersion(any, ["b"]), "aliases count");
  },
);

t.test("encodeFramedResponse carries the gRPC prefix of its own message", async (t) => {
  const f = encodeFramedResponse(
    ADDRESS_TYPE,
    "7",
    [encodeResource("n", "v", [], anyPack(AddressSchema, workloadToAddress(pod("p", "10.0.0.2"))))],
    ["gone"],
    "nonce",
  );
  t.equal(f.framed[0], 0, "not compressed");
  t.equal(f.framed.readUInt32BE(1), f.framed.length - 5, "length prefix");
  const r = fromBinary(DeltaDiscoveryResponseSchema, f.payload);
  t.equal(r.nonce, "nonce");
  t.same(r.removedResources, ["gone"]);
  t.same(
    r.resources.map((x) => x.name),
    ["n"],
  );
});

t.test("one framed response to many streams: every client decodes it and ACKs", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  const pods = Array.from({ length: 300 }, (_, i) => pod(`p${i}`, `10.1.${i >> 8}.${i & 255}`));
  srv.ads.publish(ADDRESS_TYPE, addressSet(pods).resources);
  const held: Map<string, string>[] = [];
  const clients = Array.from({ length: 4 }, (_, i) => {
    const mine = new Map<string, string>();
    held.push(mine);
    const c = new DeltaAdsClient({
      address: srv.address,
      node: { id: `ztunnel~framing-${i}` },
      // Its own connection each (grpc-js shares one per target otherwise).
      channelOptions: { "ambit.test.client": i },
      handlers: [
        {
          typeUrl: ADDRESS_TYPE,
          apply: (u: XdsUpdate) => {
            for (const a of u.added) {
              const m = anyUnpack(a.resource, AddressSchema);
              if (m?.type.case !== "workload") throw new Error(`${a.name}: not a workload`);
              mine.set(a.name, m.type.value.name);
            }
            for (const n of u.removed) mine.delete(n);
          },
        },
      ],
    });
    t.teardown(() => c.close());
    c.start();
    return c;
  });
  await Promise.all(clients.map((c) => c.ready()));
  t.same(
    held.map((m) => m.size),
    [300, 300, 300, 300],
  );
  t.equal(held[3]?.get(pods[299]!.uid), "p299");
  const conns = srv.ads.connections();
  t.equal(conns.length, 4);
  t.ok(
    conns.every((c) => c.sharedFraming === true),
    "each stream writes the shared framed bytes (the grpc-js hook is in effect)",
  );
  // A change after that: the same shared bytes again, every client ACKs it.
  const serverSaw = new Set<number>();
  const allAcked = new Promise<void>((resolve) =>
    srv.ads.on("ack", (e: { id: number }) => {
      serverSaw.add(e.id);
      if (serverSaw.size === 4) resolve();
    }),
  );
  const acks = clients.map((c) => nextEvent<{ added: number }>(c, "ack", (e) => e.added === 1));
  srv.ads.publish(ADDRESS_TYPE, addressSet([...pods.slice(1), pod("p0", "10.9.9.9")]).resources);
  await Promise.all([...acks, allAcked]);
  t.same(
    srv.ads.connections().map((c) => c.types[0]?.inSync),
    [true, true, true, true],
    "every stream in sync by its ACK",
  );
});

t.test("a change after a quiet spell goes out without waiting for the debounce window", async (t) => {
  // A window far longer than the test's timeout: were the change held for it, the test would time out.
  const srv = await startAds(0, { debounceMs: 600_000 });
  t.teardown(() => srv.close());
  const a = pod("a", "10.244.1.1");
  srv.ads.publish(ADDRESS_TYPE, addressSet([a]).resources);
  const updates: XdsUpdate[] = [];
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~quiet" },
    handlers: [{ typeUrl: ADDRESS_TYPE, apply: (u) => void updates.push(u) }],
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  const acked = nextEvent(client, "ack");
  // Changes made in the same tick still go out together.
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, pod("b", "10.244.1.2")]).resources);
  srv.ads.publish(ADDRESS_TYPE, addressSet([a, pod("b", "10.244.1.3")]).resources);
  await acked;
  t.equal(updates.length, 2);
  t.same(
    updates[1]?.added.map((x) => x.name),
    [pod("b", "").uid],
  );
});

// ResourceCache: unchanged model objects keep their Any (same object), so a
// republish after a fresh translation sends nothing; changed ones are re-encoded.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { ResourceCache } from "../../controller/push/resource-cache.js";
import { encodeResponse } from "../../controller/push/response-encoding.js";
import { DeltaAdsServer } from "../../controller/push/server.js";
import { AddressSchema } from "../../core/gen/workload_pb.js";
import { DeltaDiscoveryResponseSchema, ResourceSchema } from "../../core/gen/xds_pb.js";
import type { MeshWorkload } from "../../core/model/types.js";
import { addressAliases, workloadToAddress } from "../../core/xds/codec-address.js";
import { ADDRESS_TYPE } from "../../core/xds/type-urls.js";
import { pod } from "./xds-harness.js";

t.test("unchanged objects keep their Any; changed and new ones are encoded", async (t) => {
  let encodes = 0;
  const cache = new ResourceCache<MeshWorkload>(
    (w) => w.uid,
    (w) => {
      encodes++;
      return anyPack(AddressSchema, workloadToAddress(w));
    },
    addressAliases,
  );
  const first = cache.build([pod("a", "10.0.0.1"), pod("b", "10.0.0.2")]);
  t.equal(encodes, 2);
  t.same(first.aliases.get(pod("a", "").uid), ["/10.0.0.1"]);
  // A fresh translation: new objects, same content for a, b changed, c new.
  const second = cache.build([pod("a", "10.0.0.1"), pod("b", "10.0.0.22"), pod("c", "10.0.0.3")]);
  t.equal(encodes, 4);
  t.equal(second.resources.get(pod("a", "").uid), first.resources.get(pod("a", "").uid), "same Any object");
  t.not(second.resources.get(pod("b", "").uid), first.resources.get(pod("b", "").uid));
  const third = cache.build([pod("a", "10.0.0.1")]);
  t.same([...third.resources.keys()], [pod("a", "").uid]);

  // publish() sees identical Anys and bumps nothing.
  const ads = new DeltaAdsServer();
  ads.publish(ADDRESS_TYPE, second.resources, second.aliases);
  const before = ads.resources(ADDRESS_TYPE).get(pod("a", "").uid);
  ads.publish(
    ADDRESS_TYPE,
    cache.build([pod("a", "10.0.0.1"), pod("b", "10.0.0.22"), pod("c", "10.0.0.3")]).resources,
    second.aliases,
  );
  t.equal(ads.resources(ADDRESS_TYPE).get(pod("a", "").uid), before);
  await ads.close();
});

t.test("encode errors propagate", async (t) => {
  const cache = new ResourceCache<MeshWorkload>(
    (w) => w.uid,
    (w) => anyPack(AddressSchema, workloadToAddress(w)),
  );
  t.throws(() => cache.build([pod("bad", "10.0.0.256")]), { code: "XDS_REJECTED", message: /ips\[0\]/ });
});

t.test("encodeResponse assembles a DeltaDiscoveryResponse any protobuf decoder reads", async (t) => {
  // Sizes around the varint boundaries (127/128, 16383/16384) and a non-ASCII name.
  const resources = [0, 100, 127, 128, 16_383, 16_384, 70_000].map((n, i) =>
    create(ResourceSchema, {
      name: `r${i}-é`,
      version: `v${i}`,
      resource: { typeUrl: ADDRESS_TYPE, value: new Uint8Array(n).fill(i) },
    }),
  );
  const bytes = encodeResponse(
    ADDRESS_TYPE,
    "42",
    resources.map((r) => toBinary(ResourceSchema, r)),
    ["gone-ü", "x"],
    "n1",
  );
  const decoded = fromBinary(DeltaDiscoveryResponseSchema, bytes);
  t.equal(decoded.typeUrl, ADDRESS_TYPE);
  t.equal(decoded.systemVersionInfo, "42");
  t.equal(decoded.nonce, "n1");
  t.same(decoded.removedResources, ["gone-ü", "x"]);
  t.same(
    decoded.resources.map((r) => [r.name, r.version, r.resource?.value.length]),
    resources.map((r) => [r.name, r.version, r.resource?.value.length]),
  );
  t.equal(decoded.resources[6]?.resource?.value[69_999], 6);
});

t.test("sameJson: equal content equal, any difference different, in-place changes re-encoded", async (t) => {
  const fc = await import("fast-check");
  const { sameJson } = await import("../../controller/push/resource-cache.js");
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (x, y) => {
      if (!sameJson(x, structuredClone(x))) return false;
      // Same JSON text (same key order) → same; different content under any key order → different.
      if (JSON.stringify(x) === JSON.stringify(y) && !sameJson(x, y)) return false;
      const sorted = (v: unknown): unknown =>
        Array.isArray(v)
          ? v.map(sorted)
          : v && typeof v === "object"
            ? Object.fromEntries(
                Object.entries(v)
                  .sort(([a], [b]) => (a < b ? -1 : 1))
                  .map(([k, w]) => [k, sorted(w)]),
              )
            : v;
      return sameJson(x, y) === (JSON.stringify(sorted(x)) === JSON.stringify(sorted(y)));
    }),
    { numRuns: 500 },
  );
  t.ok(sameJson({ a: 1, b: undefined }, { a: 1 }), "undefined is absent, as in JSON");
  t.notOk(sameJson([1, 2], { 0: 1, 1: 2 }));

  let encodes = 0;
  const cache = new ResourceCache<MeshWorkload>(
    (w) => w.uid,
    (w) => {
      encodes++;
      return anyPack(AddressSchema, workloadToAddress(w));
    },
  );
  const w = pod("m", "10.0.0.1");
  cache.build([w]);
  w.ips = ["10.0.0.2"]; // changed in place and passed again: not trusted
  const r = cache.build([w]);
  t.equal(encodes, 2);
  t.same(r.resources.size, 1);
});

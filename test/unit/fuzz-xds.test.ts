// Fuzzing the xDS path end to end: a real DeltaAdsServer on loopback gRPC
// pushes random and malformed `Any` resources (wrong type URL, random bytes,
// valid protos carrying invalid IPs or ports) to a DeltaAdsClient whose
// handlers decode as ztunnel's do (decode everything, then swap state).
// Properties: a response with any undecodable resource is NACKed with a
// message that the server receives verbatim; the client keeps its last good
// state (handler and version map); good resources still flow afterwards; and
// generated valid models survive model → proto → gRPC → proto → model.
import { create, toBinary } from "@bufbuild/protobuf";
import { type Any, anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import t from "tap";
import { AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import { AddressSchema, WorkloadSchema } from "../../core/gen/workload_pb.js";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";
import { DeltaAdsClient, type XdsTypeHandler, type XdsUpdate } from "../../core/xds/client.js";
import { addressFromProto, type DecodedAddress, workloadToAddress } from "../../core/xds/codec-address.js";
import { policyFromProto, policyToProto } from "../../core/xds/codec-authz.js";
import { canonicalIp } from "../../core/xds/ip-bytes.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { fuzz } from "../fuzz/harness.js";
import { addressSet, nextEvent, pod, policySet, startAds, svc } from "./xds-harness.js";

/** Decodes as ztunnel's handler must: the right type, then the codec (which names the bad field). */
function decodeAddress(name: string, any: Any): DecodedAddress {
  if (any.typeUrl !== ADDRESS_TYPE)
    throw new Error(`resource ${name}: type ${any.typeUrl}, want ${ADDRESS_TYPE}`);
  let msg: ReturnType<typeof anyUnpack<typeof AddressSchema>>;
  try {
    msg = anyUnpack(any, AddressSchema);
  } catch (err) {
    throw new Error(`resource ${name}: not an Address: ${(err as Error).message}`);
  }
  if (!msg) throw new Error(`resource ${name}: not an Address`);
  return addressFromProto(msg);
}

function decodePolicy(name: string, any: Any): AuthzPolicy {
  if (any.typeUrl !== AUTHORIZATION_TYPE) throw new Error(`resource ${name}: type ${any.typeUrl}`);
  const msg = anyUnpack(any, AuthorizationSchema);
  if (!msg) throw new Error(`resource ${name}: not an Authorization`);
  return policyFromProto(msg);
}

/** All-or-nothing: the whole response is decoded before anything changes. */
class Store<T> implements XdsTypeHandler {
  items = new Map<string, T>();
  constructor(
    readonly typeUrl: string,
    private readonly decode: (name: string, any: Any) => T,
  ) {}
  apply(update: XdsUpdate): void {
    const next = new Map(this.items);
    for (const a of update.added) next.set(a.name, this.decode(a.name, a.resource));
    for (const n of update.removed) next.delete(n);
    this.items = next;
  }
}

const srv = await startAds();
t.teardown(() => srv.close());
const addresses = new Store(ADDRESS_TYPE, decodeAddress);
const policies = new Store(AUTHORIZATION_TYPE, decodePolicy);
const client = new DeltaAdsClient({
  address: srv.address,
  node: { id: "ztunnel~fuzz" },
  handlers: [addresses, policies],
});
t.teardown(() => client.close());

const GOOD = [pod("a", "10.244.1.1"), pod("b", "fd00::2"), svc("server", "10.96.0.10")];
srv.ads.publish(ADDRESS_TYPE, addressSet(GOOD).resources);
srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
client.start();
await client.ready();

// ---- malformed resources -------------------------------------------------

const randomBytes = fc.uint8Array({ maxLength: 300 });
const badIpLength = fc.integer({ min: 0, max: 20 }).filter((n) => n !== 4 && n !== 16);

const badAny: fc.Arbitrary<Any> = fc.oneof(
  // A valid Address under another type URL, or a made-up one.
  fc
    .oneof(
      fc.constantFrom(AUTHORIZATION_TYPE, "type.googleapis.com/istio.workload.Workload", ""),
      fc.string(),
    )
    .map((typeUrl) => ({ ...anyPack(AddressSchema, workloadToAddress(GOOD[0] as MeshWorkload)), typeUrl })),
  // Random bytes under the right type URL.
  randomBytes.map((value) => ({ ...anyPack(AddressSchema, create(AddressSchema)), value })),
  // A well-formed Workload whose address is neither 4 nor 16 bytes.
  fc.tuple(badIpLength, randomBytes).map(([n, bytes]) => {
    const w = workloadToAddress(GOOD[0] as MeshWorkload);
    const addr = new Uint8Array(n);
    addr.set(bytes.subarray(0, n));
    if (w.type.case === "workload") w.type.value.addresses = [addr];
    return anyPack(AddressSchema, w);
  }),
  // A Service with a VIP of the wrong length, or a port out of range.
  fc.tuple(badIpLength, fc.integer({ min: 65536, max: 0xffffffff })).chain(([n, port]) =>
    fc.constantFrom(
      anyPack(
        AddressSchema,
        create(AddressSchema, {
          type: {
            case: "service",
            value: {
              name: "s",
              namespace: "demo",
              hostname: "s.demo.svc.cluster.local",
              addresses: [{ network: "", address: new Uint8Array(n) }],
            },
          },
        }),
      ),
      anyPack(
        AddressSchema,
        create(AddressSchema, {
          type: {
            case: "service",
            value: {
              name: "s",
              namespace: "demo",
              hostname: "s.demo.svc.cluster.local",
              ports: [{ servicePort: port, targetPort: 80 }],
            },
          },
        }),
      ),
    ),
  ),
  // A bare Workload message packed as if it were an Address (fields land in the wrong places).
  fc.constant(0).map(
    () =>
      ({
        typeUrl: ADDRESS_TYPE,
        value: toBinary(
          WorkloadSchema,
          create(WorkloadSchema, {
            uid: "x",
            name: "x",
            namespace: "demo",
            addresses: [new Uint8Array(7)],
          }),
        ),
      }) as Any,
  ),
);

function decodesAlone(name: string, any: Any): boolean {
  try {
    decodeAddress(name, any);
    return true;
  } catch {
    return false;
  }
}

type Round = { bad: Any[]; keep: boolean[]; extraGood: number };

const round: fc.Arbitrary<Round> = fc.record({
  bad: fc.array(badAny, { minLength: 1, maxLength: 4 }),
  keep: fc.array(fc.boolean(), { minLength: GOOD.length, maxLength: GOOD.length }),
  extraGood: fc.integer({ min: 0, max: 3 }),
});

let generation = 0;

/** One round: publish good ∪ bad (NACK expected unless every "bad" one happens to decode), then a new good set. */
async function checkRound(r: Round): Promise<void> {
  generation++;
  const before = new Map(addresses.items);
  const versionsBefore = client.state().perType[ADDRESS_TYPE]?.resources;
  const current = addressSet(GOOD);
  const withBad = new Map(current.resources);
  for (const [i, any] of r.bad.entries()) withBad.set(`bad/${generation}/${i}`, any);
  const expectNack = [...withBad].some(([n, a]) => !decodesAlone(n, a));

  const clientNack = nextEvent<{ typeUrl: string; message: string; nonce: string }>(
    client,
    "nack",
    (e) => e.typeUrl === ADDRESS_TYPE,
  );
  const serverNack = nextEvent<{ typeUrl: string; message: string; nonce: string }>(
    srv.ads,
    "nack",
    (e) => e.typeUrl === ADDRESS_TYPE,
  );
  const acked = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === ADDRESS_TYPE);
  srv.ads.publish(ADDRESS_TYPE, withBad);
  if (expectNack) {
    const [c, s] = await Promise.all([clientNack, serverNack]);
    if (!c.message) throw new Error("NACK without a message");
    if (s.message !== c.message)
      throw new Error(`server got ${JSON.stringify(s.message)}, client sent ${JSON.stringify(c.message)}`);
    if (addresses.items.size !== before.size || [...before].some(([k, v]) => addresses.items.get(k) !== v)) {
      throw new Error("the handler's state changed on a NACK");
    }
    if (client.state().perType[ADDRESS_TYPE]?.resources !== versionsBefore)
      throw new Error("the client's versions changed on a NACK");
  } else {
    await acked;
  }

  // Good resources still flow: drop some, add some, and the client holds exactly them.
  const next = [
    ...GOOD.filter((_, i) => r.keep[i]),
    ...Array.from({ length: r.extraGood }, (_, i) =>
      pod(`g${generation}-${i}`, `10.245.${generation % 250}.${i + 1}`),
    ),
  ];
  const set = addressSet(next);
  const goodAck = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === ADDRESS_TYPE);
  srv.ads.publish(ADDRESS_TYPE, set.resources);
  await goodAck;
  const want = [...set.resources.keys()].sort();
  const have = [...addresses.items.keys()].sort();
  if (JSON.stringify(want) !== JSON.stringify(have))
    throw new Error(`after recovery client holds ${have}, want ${want}`);
  // Back to the baseline for the next round.
  const reset = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === ADDRESS_TYPE);
  srv.ads.publish(ADDRESS_TYPE, current.resources);
  if (JSON.stringify(want) !== JSON.stringify([...current.resources.keys()].sort())) await reset;
}

t.test(
  "malformed Address resources are NACKed with a message; last good state kept; good ones flow after",
  async (t) => {
    const n = await fuzz({ target: "xds-malformed", ci: 40 }, round, checkRound);
    t.ok(n > 0, `${n} rounds`);
    const st = client.state().perType[ADDRESS_TYPE];
    t.ok((st?.nacked ?? 0) > 0, `the client NACKed ${st?.nacked} responses`);
    t.equal(client.state().connected, true, "still connected after every NACK");
    t.equal(addresses.items.size, GOOD.length);
  },
);

t.test("a NACK of one type does not hold back the other", async (t) => {
  const polNack = nextEvent<{ typeUrl: string }>(client, "nack", (e) => e.typeUrl === AUTHORIZATION_TYPE);
  srv.ads.publish(
    AUTHORIZATION_TYPE,
    new Map([["demo/bad", { typeUrl: AUTHORIZATION_TYPE, value: new Uint8Array([0xff, 0xff]) } as Any]]),
  );
  await polNack;
  const acked = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === ADDRESS_TYPE);
  srv.ads.publish(ADDRESS_TYPE, addressSet([...GOOD, pod("late", "10.244.9.9")]).resources);
  await acked;
  t.ok(addresses.items.has(pod("late", "10.244.9.9").uid), "addresses still flow while policies are NACKed");
  t.equal(policies.items.size, 0, "the bad policy was not applied");
});

// ---- valid models round-trip over the real wire ---------------------------

/** Order-independent JSON of a map of plain objects (absent and undefined fields alike). */
function canon(m: Map<string, unknown>): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify([...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, sortKeys(v)]));
}

const dnsName = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?$/);
const ip = fc.oneof(fc.ipV4(), fc.ipV6()).map((x) => canonicalIp(x) ?? x);
const port = fc.integer({ min: 1, max: 65535 });

const workloadModel = (i: number): fc.Arbitrary<MeshWorkload> =>
  fc
    .record({
      ns: dnsName,
      ips: fc.array(ip, { maxLength: 2 }),
      sa: dnsName,
      healthy: fc.boolean(),
      tunnel: fc.constantFrom("hbone" as const, "none" as const),
      services: fc.dictionary(
        dnsName.map((s) => `demo/${s}.demo.svc.cluster.local`),
        fc.array(fc.record({ servicePort: port, targetPort: port }), { maxLength: 2 }),
        { maxKeys: 2 },
      ),
    })
    .map((g) =>
      pod(`w${i}`, "10.0.0.1", {
        namespace: g.ns,
        uid: `Kubernetes//v1/Pod/${g.ns}/w${i}`,
        ips: g.ips,
        serviceAccount: g.sa,
        healthy: g.healthy,
        tunnel: g.tunnel,
        services: g.services,
      }),
    );

const serviceModel = (i: number): fc.Arbitrary<MeshService> =>
  fc
    .record({
      vips: fc.array(ip, { maxLength: 2 }),
      ports: fc.array(
        fc.record({
          port,
          targetPort: fc.integer({ min: 0, max: 65535 }),
          appProtocol: fc.constantFrom("tcp" as const, "http" as const, "http2" as const, "grpc" as const),
        }),
        { maxLength: 3 },
      ),
    })
    .map((g) => ({ ...svc(`s${i}`, "10.96.0.1"), vips: g.vips, ports: g.ports }));

const models = fc
  .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 }))
  .chain(([w, s]) =>
    fc.tuple(
      fc.tuple(...Array.from({ length: w }, (_, i) => workloadModel(i))),
      fc.tuple(...Array.from({ length: s }, (_, i) => serviceModel(i))),
    ),
  );

t.test("valid models survive model → proto → gRPC → proto → model", async (t) => {
  const n = await fuzz({ target: "xds-roundtrip", ci: 30 }, models, async ([ws, ss]) => {
    const items = [...ws, ...ss];
    const set = addressSet(items);
    const want = new Map<string, DecodedAddress>(
      items.map((x) =>
        "uid" in x ? [x.uid, { kind: "workload", workload: x }] : [x.key, { kind: "service", service: x }],
      ),
    );
    const acked = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === ADDRESS_TYPE);
    // Publishing exactly what the client already holds sends nothing: only wait when something changes.
    const unchanged = canon(addresses.items) === canon(want);
    srv.ads.publish(ADDRESS_TYPE, set.resources);
    if (!unchanged) await acked;
    if (canon(addresses.items) !== canon(want)) {
      throw new Error(`client holds ${canon(addresses.items)}\nwant ${canon(want)}`);
    }
  });
  t.ok(n > 0);

  const policy: AuthzPolicy = {
    name: "p",
    namespace: "demo",
    scope: "namespace",
    action: "deny",
    dryRun: false,
    rules: [{ clauses: [{ matches: [{ destinationPorts: [80] }] }] }],
  };
  const acked = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === AUTHORIZATION_TYPE);
  srv.ads.publish(
    AUTHORIZATION_TYPE,
    new Map([["demo/p", anyPack(AuthorizationSchema, policyToProto(policy))]]),
  );
  await acked;
  t.same(policies.items.get("demo/p"), policy, "policies recover after their NACK");
});

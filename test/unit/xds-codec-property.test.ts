// Property tests of the xDS codecs: any valid model object survives the wire
// unchanged (IPs canonicalised); any bytes a peer might send either decode to
// a model object or are rejected with XDS_REJECTED, never another crash.
import { isIPv6 } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import t from "tap";
import { AmbitError } from "../../core/errors/errors.js";
import { type Authorization, AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import { type Address, AddressSchema } from "../../core/gen/workload_pb.js";
import type {
  AuthzMatch,
  AuthzPolicy,
  GatewayAddress,
  MeshService,
  MeshWorkload,
  StringMatch,
} from "../../core/model/types.js";
import { addressFromProto, serviceToAddress, workloadToAddress } from "../../core/xds/codec-address.js";
import { policyFromProto, policyToProto } from "../../core/xds/codec-authz.js";
import { canonicalIp, ipFromBytes, ipToBytes } from "../../core/xds/ip-bytes.js";

const ip = fc.oneof(fc.ipV4(), fc.ipV6()).map((x) => canonicalIp(x) ?? x);
const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const port = fc.integer({ min: 1, max: 65535 });
const gateway: fc.Arbitrary<GatewayAddress> = fc.oneof(
  fc.record({ address: ip, hboneMtlsPort: port }),
  fc.record({ hostname: fc.record({ namespace: name, hostname: name }), hboneMtlsPort: port }),
);

const workload: fc.Arbitrary<MeshWorkload> = fc
  .record(
    {
      name,
      namespace: name,
      ips: fc.array(ip, { maxLength: 3 }),
      node: name,
      serviceAccount: name,
      trustDomain: name,
      tunnel: fc.constantFrom("hbone" as const, "none" as const),
      waypoint: gateway,
      services: fc.dictionary(
        name,
        fc.array(fc.record({ servicePort: port, targetPort: fc.integer({ min: 0, max: 65535 }) }), {
          maxLength: 3,
        }),
        { maxKeys: 3 },
      ),
      healthy: fc.boolean(),
      canonicalName: fc.string(),
      canonicalRevision: fc.string(),
      workloadName: fc.string(),
      workloadType: fc.constantFrom(
        "deployment" as const,
        "cronjob" as const,
        "pod" as const,
        "job" as const,
      ),
      clusterId: name,
      network: fc.string({ maxLength: 8 }),
      authorizationPolicies: fc.array(fc.string(), { maxLength: 3 }),
    },
    {
      requiredKeys: [
        "name",
        "namespace",
        "ips",
        "node",
        "serviceAccount",
        "trustDomain",
        "tunnel",
        "services",
        "healthy",
        "canonicalName",
        "canonicalRevision",
        "workloadName",
        "workloadType",
        "clusterId",
        "network",
        "authorizationPolicies",
      ],
    },
  )
  .map((w) => ({ uid: `${w.clusterId}//v1/Pod/${w.namespace}/${w.name}`, ...w }));

const service: fc.Arbitrary<MeshService> = fc
  .record(
    {
      name,
      namespace: name,
      vips: fc.array(ip, { maxLength: 3 }),
      ports: fc.array(
        fc.record({
          port,
          targetPort: fc.integer({ min: 0, max: 65535 }),
          appProtocol: fc.constantFrom("tcp" as const, "http" as const, "http2" as const, "grpc" as const),
        }),
        { maxLength: 4 },
      ),
      waypoint: gateway,
      network: fc.string({ minLength: 1, maxLength: 8 }),
    },
    { requiredKeys: ["name", "namespace", "vips", "ports"] },
  )
  .map((s) => {
    const hostname = `${s.name}.${s.namespace}.svc.cluster.local`;
    const out: MeshService = { key: `${s.namespace}/${hostname}`, hostname, ...s };
    // The network travels on the VIPs; without VIPs there is nothing to carry it.
    if (out.vips.length === 0) delete out.network;
    return out;
  });

const stringMatch: fc.Arbitrary<StringMatch> = fc.oneof(
  fc.record({ exact: fc.string() }),
  fc.record({ prefix: fc.string() }),
  fc.record({ suffix: fc.string() }),
  fc.constant({ presence: true as const }),
);
const cidr = fc
  .oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })),
  )
  .map(([a, length]) => ({ address: canonicalIp(a) ?? a, length }));
const sa = fc.record({ namespace: name, serviceAccount: name });
const nonEmpty = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: 1, maxLength: 3 });
const match: fc.Arbitrary<AuthzMatch> = fc.record(
  {
    namespaces: nonEmpty(stringMatch),
    notNamespaces: nonEmpty(stringMatch),
    principals: nonEmpty(stringMatch),
    notPrincipals: nonEmpty(stringMatch),
    serviceAccounts: nonEmpty(sa),
    notServiceAccounts: nonEmpty(sa),
    sourceIps: nonEmpty(cidr),
    notSourceIps: nonEmpty(cidr),
    destinationIps: nonEmpty(cidr),
    notDestinationIps: nonEmpty(cidr),
    destinationPorts: nonEmpty(port),
    notDestinationPorts: nonEmpty(port),
  },
  { requiredKeys: [] },
);
const policy: fc.Arbitrary<AuthzPolicy> = fc.record({
  name,
  namespace: name,
  scope: fc.constantFrom("global" as const, "namespace" as const, "workload" as const),
  action: fc.constantFrom("allow" as const, "deny" as const),
  dryRun: fc.boolean(),
  rules: fc.array(
    fc.record({
      clauses: fc.array(fc.record({ matches: fc.array(match, { maxLength: 3 }) }), { maxLength: 3 }),
    }),
    {
      maxLength: 3,
    },
  ),
});

function expectRejectedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof AmbitError) || err.code !== "XDS_REJECTED") throw err;
  }
}

t.test("IP bytes round trip for every 4- and 16-byte value", async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
      ),
      (b) => {
        const text = ipFromBytes(b)!;
        if (b.length === 16 && !isIPv6(text)) return false;
        return Buffer.from(ipToBytes(text)!).equals(Buffer.from(b));
      },
    ),
  );
  t.pass();
});

t.test("workloads and services survive the wire", async (t) => {
  fc.assert(
    fc.property(workload, (w) => {
      const back = addressFromProto(fromBinary(AddressSchema, toBinary(AddressSchema, workloadToAddress(w))));
      t.same(back, { kind: "workload", workload: w });
      return true;
    }),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(service, (s) => {
      const back = addressFromProto(fromBinary(AddressSchema, toBinary(AddressSchema, serviceToAddress(s))));
      t.same(back, { kind: "service", service: s });
      return true;
    }),
    { numRuns: 200 },
  );
});

t.test("authorization policies survive the wire", async (t) => {
  fc.assert(
    fc.property(policy, (p) => {
      t.same(
        policyFromProto(fromBinary(AuthorizationSchema, toBinary(AuthorizationSchema, policyToProto(p)))),
        p,
      );
      return true;
    }),
    { numRuns: 200 },
  );
});

t.test("arbitrary bytes decode or are rejected with XDS_REJECTED, nothing else", async (t) => {
  // Valid encodings with bytes flipped reach deep into the decoder; raw random bytes test the framing.
  const mutated = (base: fc.Arbitrary<Uint8Array>) =>
    fc
      .tuple(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
      .map(([b, flips]) => {
        const out = Uint8Array.from(b);
        for (const [i, v] of flips) if (out.length) out[i % out.length] = v;
        return out;
      });
  const addressBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    mutated(workload.map((w) => toBinary(AddressSchema, workloadToAddress(w)))),
    mutated(service.map((s) => toBinary(AddressSchema, serviceToAddress(s)))),
  );
  fc.assert(
    fc.property(addressBytes, (b) => {
      let msg: Address;
      try {
        msg = fromBinary(AddressSchema, b);
      } catch {
        return true; // not protobuf: the client NACKs at decode
      }
      expectRejectedOrOk(() => addressFromProto(msg));
      return true;
    }),
    { numRuns: 1000 },
  );
  const policyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    mutated(policy.map((p) => toBinary(AuthorizationSchema, policyToProto(p)))),
  );
  fc.assert(
    fc.property(policyBytes, (b) => {
      let msg: Authorization;
      try {
        msg = fromBinary(AuthorizationSchema, b);
      } catch {
        return true;
      }
      expectRejectedOrOk(() => policyFromProto(msg));
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

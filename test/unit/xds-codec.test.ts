// Round trips model → wire (through real protobuf bytes) → model for the
// Address and Authorization codecs, and rejections that name the field.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { AmbitError } from "../../core/errors/errors.js";
import { type Action, AuthorizationSchema } from "../../core/gen/authorization_pb.js";
import {
  type Address,
  AddressSchema,
  AppProtocol,
  TunnelProtocol,
  WorkloadType,
} from "../../core/gen/workload_pb.js";
import type { AuthzPolicy, MeshService, MeshWorkload } from "../../core/model/types.js";
import {
  addressAliases,
  addressFromProto,
  addressResourceName,
  serviceToAddress,
  workloadToAddress,
  workloadUid,
} from "../../core/xds/codec-address.js";
import { authzResourceName, policyFromProto, policyToProto } from "../../core/xds/codec-authz.js";
import { canonicalIp, ipFromBytes, ipToBytes } from "../../core/xds/ip-bytes.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";

function workload(over: Partial<MeshWorkload> = {}): MeshWorkload {
  return {
    uid: workloadUid("Kubernetes", "demo", "client-7d9f"),
    name: "client-7d9f",
    namespace: "demo",
    ips: ["10.244.1.5"],
    node: "node-1",
    serviceAccount: "client",
    trustDomain: "cluster.local",
    tunnel: "hbone",
    services: { "demo/server.demo.svc.cluster.local": [{ servicePort: 80, targetPort: 8080 }] },
    healthy: true,
    canonicalName: "client",
    canonicalRevision: "v1",
    workloadName: "client",
    workloadType: "deployment",
    clusterId: "Kubernetes",
    network: "",
    authorizationPolicies: ["demo/allow-client"],
    ...over,
  };
}

function service(over: Partial<MeshService> = {}): MeshService {
  return {
    key: "demo/server.demo.svc.cluster.local",
    name: "server",
    namespace: "demo",
    hostname: "server.demo.svc.cluster.local",
    vips: ["10.96.0.20"],
    ports: [
      { port: 80, targetPort: 8080, appProtocol: "http" },
      { port: 9090, targetPort: 0, appProtocol: "grpc" },
      { port: 5432, targetPort: 5432, appProtocol: "tcp" },
      { port: 8443, targetPort: 8443, appProtocol: "http2" },
    ],
    ...over,
  };
}

/** model → Address → bytes → Any → bytes → Address → model, as it travels. */
function wireTrip(a: Address): Address {
  const any = anyPack(AddressSchema, fromBinary(AddressSchema, toBinary(AddressSchema, a)));
  t.equal(any.typeUrl, ADDRESS_TYPE);
  const back = anyUnpack(any, AddressSchema);
  if (!back) throw new Error("unpack failed");
  return back;
}

t.test("ip bytes", async (t) => {
  t.same([...(ipToBytes("10.1.2.3") ?? [])], [10, 1, 2, 3]);
  t.equal(ipToBytes("fd00::1")?.length, 16);
  t.equal(ipFromBytes(ipToBytes("fd00:0:0:0:0:0:0:1")!), "fd00::1");
  t.equal(ipFromBytes(ipToBytes("2001:db8:1:0:0:1:0:1")!), "2001:db8:1::1:0:1");
  t.equal(ipFromBytes(ipToBytes("::")!), "::");
  t.equal(ipFromBytes(ipToBytes("::ffff:10.0.0.1")!), "::ffff:a00:1");
  t.equal(canonicalIp("FD00:0::AB"), "fd00::ab");
  t.equal(ipToBytes("not-an-ip"), undefined);
  t.equal(ipFromBytes(new Uint8Array(5)), undefined);
});

t.test("workload IPv4 round trip", async (t) => {
  const w = workload();
  const a = workloadToAddress(w);
  t.equal(a.type.case, "workload");
  if (a.type.case === "workload") {
    t.same([...a.type.value.addresses[0]!], [10, 244, 1, 5]);
    t.equal(a.type.value.tunnelProtocol, TunnelProtocol.HBONE);
    t.equal(a.type.value.workloadType, WorkloadType.DEPLOYMENT);
  }
  t.same(addressFromProto(wireTrip(a)), { kind: "workload", workload: w });
  t.equal(addressResourceName(w), "Kubernetes//v1/Pod/demo/client-7d9f");
  t.same(addressAliases(w), ["/10.244.1.5"]);
});

t.test("workload IPv6 and dual stack, waypoint by address and hostname, every enum", async (t) => {
  const variants: MeshWorkload[] = [
    workload({ ips: ["fd00:10:244::5"], waypoint: { address: "fd00:10:96::99", hboneMtlsPort: 15008 } }),
    workload({
      ips: ["10.244.1.5", "fd00:10:244::5"],
      tunnel: "none",
      healthy: false,
      workloadType: "pod",
      network: "net-1",
      waypoint: {
        hostname: { namespace: "demo", hostname: "waypoint.demo.svc.cluster.local" },
        hboneMtlsPort: 15008,
      },
    }),
    workload({ workloadType: "job", services: {}, authorizationPolicies: [], ips: [] }),
    workload({ workloadType: "cronjob" }),
  ];
  for (const w of variants)
    t.same(addressFromProto(wireTrip(workloadToAddress(w))), { kind: "workload", workload: w });
});

t.test("service with ports, VIPs, waypoint round trip", async (t) => {
  const s = service({ waypoint: { address: "10.96.0.99", hboneMtlsPort: 15008 } });
  const a = serviceToAddress(s);
  if (a.type.case !== "service") throw new Error("not a service");
  t.same(
    a.type.value.ports.map((p) => p.appProtocol),
    [AppProtocol.HTTP11, AppProtocol.GRPC, AppProtocol.UNKNOWN, AppProtocol.HTTP2],
  );
  t.equal(a.type.value.addresses[0]?.network, "");
  t.same([...a.type.value.addresses[0]!.address], [10, 96, 0, 20]);
  t.same(addressFromProto(wireTrip(a)), { kind: "service", service: s });
  t.equal(addressResourceName(s), "demo/server.demo.svc.cluster.local");

  const v6 = service({ vips: ["fd00:10:96::20", "10.96.0.20"], network: "net-2" });
  t.same(addressFromProto(wireTrip(serviceToAddress(v6))), { kind: "service", service: v6 });
  t.same(addressAliases(v6), ["net-2/fd00:10:96::20", "net-2/10.96.0.20"]);
  const headless = service({ vips: [], ports: [] });
  t.same(addressFromProto(wireTrip(serviceToAddress(headless))), { kind: "service", service: headless });
});

t.test("invalid Address resources are rejected naming the field", async (t) => {
  const bad = workloadToAddress(workload());
  if (bad.type.case !== "workload") throw new Error("not a workload");
  bad.type.value.addresses[0] = new Uint8Array([1, 2, 3, 4, 5]);
  t.throws(() => addressFromProto(bad), {
    code: "XDS_REJECTED",
    message: /Workload demo\/client-7d9f: field addresses\[0\]: 5 bytes/,
  });

  const noType = create(AddressSchema, {});
  t.throws(() => addressFromProto(noType), { code: "XDS_REJECTED", message: /field type/ });

  const legacy = workloadToAddress(workload());
  if (legacy.type.case === "workload") legacy.type.value.tunnelProtocol = TunnelProtocol.LEGACY_ISTIO_MTLS;
  t.throws(() => addressFromProto(legacy), { code: "XDS_REJECTED", message: /tunnel_protocol/ });

  const badSvc = serviceToAddress(service());
  if (badSvc.type.case === "service") badSvc.type.value.addresses[0]!.address = new Uint8Array(3);
  t.throws(() => addressFromProto(badSvc), {
    message: /Service demo\/server: field addresses\[0\]\.address/,
  });

  const noHost = serviceToAddress(service());
  if (noHost.type.case === "service") noHost.type.value.hostname = "";
  t.throws(() => addressFromProto(noHost), { message: /field hostname/ });

  const badWaypoint = workloadToAddress(
    workload({ waypoint: { address: "10.0.0.9", hboneMtlsPort: 15008 } }),
  );
  if (badWaypoint.type.case === "workload")
    badWaypoint.type.value.waypoint!.destination = { case: undefined };
  t.throws(() => addressFromProto(badWaypoint), { message: /field waypoint\.destination/ });

  t.throws(() => workloadToAddress(workload({ ips: ["10.0.0.300"] })), {
    code: "XDS_REJECTED",
    message: /ips\[0\]/,
  });
  const err = (() => {
    try {
      addressFromProto(bad);
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof AmbitError);
});

function fullPolicy(): AuthzPolicy {
  return {
    name: "allow-client",
    namespace: "demo",
    scope: "workload",
    action: "allow",
    dryRun: false,
    rules: [
      {
        clauses: [
          {
            matches: [
              {
                namespaces: [{ exact: "demo" }, { prefix: "team-" }],
                notNamespaces: [{ suffix: "-test" }],
                principals: [{ exact: "cluster.local/ns/demo/sa/client" }, { presence: true }],
                notPrincipals: [{ prefix: "cluster.local/ns/evil/" }],
                serviceAccounts: [{ namespace: "demo", serviceAccount: "client" }],
                notServiceAccounts: [{ namespace: "demo", serviceAccount: "batch" }],
                sourceIps: [{ address: "10.244.0.0", length: 16 }],
                notSourceIps: [{ address: "10.244.9.9", length: 32 }],
                destinationIps: [{ address: "fd00::", length: 8 }],
                notDestinationIps: [{ address: "fd00::1", length: 128 }],
                destinationPorts: [80, 8080],
                notDestinationPorts: [9090],
              },
              { namespaces: [{ exact: "other" }] },
            ],
          },
          { matches: [{ destinationPorts: [443] }] },
        ],
      },
      { clauses: [] },
    ],
  };
}

t.test("authorization round trip with every match field", async (t) => {
  const p = fullPolicy();
  const wire = policyToProto(p);
  const any = anyPack(
    AuthorizationSchema,
    fromBinary(AuthorizationSchema, toBinary(AuthorizationSchema, wire)),
  );
  t.equal(any.typeUrl, AUTHORIZATION_TYPE);
  const back = anyUnpack(any, AuthorizationSchema)!;
  t.same(policyFromProto(back), p);
  t.equal(authzResourceName(p), "demo/allow-client");

  for (const variant of [
    { ...p, scope: "global" as const, action: "deny" as const, dryRun: true },
    { ...p, scope: "namespace" as const, rules: [] },
  ]) {
    t.same(policyFromProto(policyToProto(variant)), variant);
  }
});

t.test("invalid Authorization resources are rejected naming the field", async (t) => {
  const wire = policyToProto(fullPolicy());
  wire.rules[0]!.clauses[0]!.matches[0]!.sourceIps[0]!.length = 40;
  t.throws(() => policyFromProto(wire), {
    code: "XDS_REJECTED",
    message:
      /AuthorizationPolicy demo\/allow-client: field rules\[0\]\.clauses\[0\]\.matches\[0\]\.source_ips\[0\]\.length/,
  });
  const wire2 = policyToProto(fullPolicy());
  wire2.rules[0]!.clauses[0]!.matches[0]!.namespaces[0]!.matchType = { case: undefined };
  t.throws(() => policyFromProto(wire2), { message: /namespaces\[0\]\.match_type/ });
  const wire3 = policyToProto(fullPolicy());
  wire3.action = 7 as Action;
  t.throws(() => policyFromProto(wire3), { message: /field action/ });
  t.throws(
    () =>
      policyToProto({
        ...fullPolicy(),
        rules: [{ clauses: [{ matches: [{ sourceIps: [{ address: "x", length: 1 }] }] }] }],
      }),
    {
      message: /sourceIps\[0\]\.address/,
    },
  );
});

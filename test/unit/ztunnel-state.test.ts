// MeshState: the address index the proxy consults.
import t from "tap";
import { planOutbound } from "../../ztunnel/proxy/outbound.js";
import { MeshState, workloadIdentity } from "../../ztunnel/state/mesh-state.js";
import { policy, service, workload } from "./fixtures-ztunnel.js";

const svc = service({ name: "web", namespace: "b", vip: "10.96.0.10", port: 80, targetPort: 8080 });
const wpSvc = service({
  name: "waypoint",
  namespace: "b",
  vip: "10.96.0.99",
  port: 15008,
  targetPort: 15008,
});
const backs = (port: number) => ({ [svc.key]: [{ servicePort: 80, targetPort: port }] });
const w1 = workload({ name: "web-1", namespace: "b", ip: "10.0.2.1", node: "n2", services: backs(8080) });
const w2 = workload({ name: "web-2", namespace: "b", ip: "10.0.2.2", node: "n2", services: backs(9090) });
const w3 = workload({
  name: "web-3",
  namespace: "b",
  ip: "10.0.3.3",
  node: "n3",
  services: backs(8080),
  healthy: false,
});
const client = workload({ name: "client", namespace: "a", ip: "10.0.1.1", node: "n1" });
const wp = workload({
  name: "waypoint-0",
  namespace: "b",
  ip: "10.0.2.9",
  node: "n2",
  serviceAccount: "waypoint",
  services: { [wpSvc.key]: [{ servicePort: 15008, targetPort: 15008 }] },
});

function fresh(): MeshState {
  const s = new MeshState();
  s.applyAddresses([svc, wpSvc, w1, w2, w3, client, wp]);
  return s;
}

t.test("lookup by IP: workloads and service VIPs; hostname; unknown", async (tt) => {
  const s = fresh();
  tt.match(s.lookup("10.0.2.1"), { kind: "workload", workload: { name: "web-1" } });
  tt.match(s.lookup("10.96.0.10"), { kind: "service", service: { name: "web" } });
  tt.equal(s.lookup("192.0.2.1"), undefined);
  tt.equal(s.serviceByHostname("WEB.b.svc.cluster.local")?.key, svc.key);
  tt.same(s.endpointIps(svc).sort(), ["10.0.2.1", "10.0.2.2"], "only healthy endpoints");
});

t.test("pickEndpoint: round robin over healthy backends with per-workload target ports", async (tt) => {
  const s = fresh();
  const picks = [0, 1, 2, 3].map(() => s.pickEndpoint(svc, 80));
  tt.same(
    picks.map((p) => `${p?.ip}:${p?.targetPort}`),
    ["10.0.2.1:8080", "10.0.2.2:9090", "10.0.2.1:8080", "10.0.2.2:9090"],
  );
  tt.equal(s.pickEndpoint(svc, 81), undefined, "a port the service does not declare");
  const next = s.pickEndpoint(svc, 80, { peek: true });
  tt.same(s.pickEndpoint(svc, 80, { peek: true }), next, "peek does not advance");
  tt.same(s.pickEndpoint(svc, 80), next, "the real pick is the peeked one");
  s.applyAddresses([
    { ...w1, healthy: false },
    { ...w2, healthy: false },
  ]);
  tt.equal(s.pickEndpoint(svc, 80), undefined, "no healthy endpoint");
});

t.test("removal by resource name and re-indexing on update", async (tt) => {
  const s = fresh();
  s.applyAddresses([], [w1.uid, svc.key]);
  tt.equal(s.lookup("10.0.2.1"), undefined);
  tt.equal(s.lookup("10.96.0.10"), undefined);
  tt.equal(s.serviceByHostname(svc.hostname), undefined);
  s.applyAddresses([{ ...w2, ips: ["10.0.2.22"] }]);
  tt.equal(s.lookup("10.0.2.2"), undefined, "old IP unindexed");
  tt.match(s.lookup("10.0.2.22"), { kind: "workload" });
  s.applyAddresses([{ kind: "service", service: svc }]);
  tt.same(
    s
      .endpointsOf(svc)
      .map((w) => w.name)
      .sort(),
    ["web-2", "web-3"],
    "the codec's tagged form works too",
  );
});

t.test("a colliding pod IP is refused: the first holder keeps it", async (tt) => {
  const s = fresh();
  const intruder = workload({ name: "intruder", namespace: "x", ip: "10.0.2.1", node: "n9" });
  s.applyAddresses([intruder]);
  tt.equal(s.workloadByIp("10.0.2.1")?.name, "web-1");
  tt.ok(s.workload(intruder.uid), "still known by uid");
  s.applyAddresses([], [w1.uid]);
  tt.equal(
    s.workloadByIp("10.0.2.1"),
    undefined,
    "released when the holder goes (the intruder must be re-sent)",
  );
});

t.test("policiesFor: global + namespace + selected workload policies", async (tt) => {
  const s = fresh();
  s.applyPolicies([
    policy({ name: "g", namespace: "istio-system", scope: "global", action: "deny" }),
    policy({ name: "ns-b", namespace: "b", action: "allow" }),
    policy({ name: "ns-a", namespace: "a", action: "allow" }),
    policy({ name: "sel", namespace: "b", scope: "workload", action: "allow" }),
  ]);
  const target = { ...w1, authorizationPolicies: ["b/sel"] };
  tt.same(
    s
      .policiesFor(target)
      .map((p) => p.name)
      .sort(),
    ["g", "ns-b", "sel"],
  );
  s.applyPolicies([], ["b/ns-b"]);
  tt.same(
    s
      .policiesFor(target)
      .map((p) => p.name)
      .sort(),
    ["g", "sel"],
  );
});

t.test("waypoints resolve through a workload IP, a service VIP or a hostname", async (tt) => {
  const s = fresh();
  tt.match(s.resolveGateway({ address: "10.0.2.9", hboneMtlsPort: 15008 }), {
    ip: "10.0.2.9",
    port: 15008,
    identity: workloadIdentity(wp),
  });
  tt.match(s.resolveGateway({ address: "10.96.0.99", hboneMtlsPort: 15008 }), {
    ip: "10.0.2.9",
    identity: workloadIdentity(wp),
  });
  tt.match(
    s.resolveGateway({ hostname: { namespace: "b", hostname: wpSvc.hostname }, hboneMtlsPort: 15008 }),
    { ip: "10.0.2.9" },
  );
  tt.equal(
    s.resolveGateway({ hostname: { namespace: "b", hostname: "nope" }, hboneMtlsPort: 15008 }),
    undefined,
  );
});

t.test("planOutbound: VIP → endpoint, pod → direct, waypoint, passthrough, refuse", async (tt) => {
  const s = fresh();
  tt.match(planOutbound(s, { ip: "10.96.0.10", port: 80 }, client), {
    kind: "hbone",
    tunnel: { ip: "10.0.2.1", port: 15008 },
    authority: "10.0.2.1:8080",
    peerIdentity: workloadIdentity(w1),
    viaWaypoint: false,
  });
  tt.match(planOutbound(s, { ip: "10.0.2.2", port: 7000 }, client), {
    kind: "hbone",
    authority: "10.0.2.2:7000",
  });
  tt.match(planOutbound(s, { ip: "8.8.8.8", port: 53 }, client), {
    kind: "passthrough",
    reason: "not_in_mesh",
  });
  s.applyAddresses([{ ...svc, waypoint: { address: "10.96.0.99", hboneMtlsPort: 15008 } }]);
  tt.match(planOutbound(s, { ip: "10.96.0.10", port: 80 }, client), {
    kind: "hbone",
    tunnel: { ip: "10.0.2.9", port: 15008 },
    authority: "10.96.0.10:80",
    viaWaypoint: true,
  });
  tt.match(
    planOutbound(s, { ip: "10.96.0.10", port: 80 }, wp),
    { kind: "hbone", viaWaypoint: false },
    "the waypoint itself goes to the endpoint",
  );
  s.applyAddresses([{ ...svc, waypoint: { address: "10.96.0.250", hboneMtlsPort: 15008 } }]);
  tt.match(planOutbound(s, { ip: "10.96.0.10", port: 80 }, client), {
    kind: "refuse",
    reason: "waypoint_unresolved",
  });
  s.applyAddresses([svc, { ...w1, tunnel: "none" }, { ...w2, healthy: false }]);
  tt.match(planOutbound(s, { ip: "10.96.0.10", port: 80 }, client), {
    kind: "passthrough",
    reason: "not_enrolled",
    dst: { ip: "10.0.2.1", port: 8080 },
  });
});

t.test("local workloads and dump", async (tt) => {
  const s = fresh();
  s.applyPolicies([policy({ name: "p", namespace: "b", action: "allow" })]);
  tt.same(
    s
      .localWorkloads("n2")
      .map((w) => w.name)
      .sort(),
    ["waypoint-0", "web-1", "web-2"],
  );
  const d = s.dump();
  tt.equal(d.workloads.length, 5);
  tt.equal(d.services.length, 2);
  tt.equal(d.policies[0]?.name, "p");
  tt.same(JSON.parse(JSON.stringify(d)), d, "plain JSON");
  tt.same(s.size, { workloads: 5, services: 2, policies: 1 });
});

// `ambit why`'s engine against golden answers (UPDATE_GOLDEN=1 rewrites
// test/fixtures/why/*.txt): allowed and denied over HBONE, an ALLOW policy
// that does not match, STRICT and PERMISSIVE plain text from a pod that is not
// captured, pass-through to a pod that is not enrolled, a pod the ztunnel does
// not capture (yet), a service without endpoints, and through a waypoint:
// routed, fault, L7 denial. Each case also checks the verdict against the
// decision function the data path calls, so a golden file cannot hide a
// wrong verdict.
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { splitDst } from "../../cli/commands/why.js";
import { explainConnection, type WhyAnswer, type WhyViews } from "../../cli/why/engine.js";
import { renderWhy } from "../../cli/why/render.js";
import type { WaypointService } from "../../core/model/waypoint.js";
import { policy, service, spiffe, workload } from "./fixtures-ztunnel.js";

const update = process.env.UPDATE_GOLDEN === "1";
const dir = path.join(process.cwd(), "test/fixtures/why");

const web = service({ name: "web", namespace: "shop", vip: "10.96.0.20", port: 80, targetPort: 8080 });
const api = service({ name: "api", namespace: "shop", vip: "10.96.0.30", port: 80, targetPort: 8080 });
const empty = service({ name: "empty", namespace: "shop", vip: "10.96.0.40", port: 80, targetPort: 8080 });
const wpSvc = service({
  name: "waypoint",
  namespace: "shop",
  vip: "10.96.0.99",
  port: 15008,
  targetPort: 15008,
});
api.waypoint = {
  hostname: { namespace: "shop", hostname: "waypoint.shop.svc.cluster.local" },
  hboneMtlsPort: 15008,
};
const backs = (s: typeof web) => ({ [s.key]: [{ servicePort: 80, targetPort: 8080 }] });
const client = workload({ name: "client-0", namespace: "shop", ip: "10.213.1.5", node: "node-1" });
const rogue = workload({
  name: "rogue-0",
  namespace: "shop",
  ip: "10.213.1.6",
  node: "node-1",
  serviceAccount: "rogue",
});
const late = workload({ name: "late-0", namespace: "shop", ip: "10.213.1.7", node: "node-1" });
const plain = workload({
  name: "legacy-0",
  namespace: "legacy",
  ip: "10.213.1.9",
  node: "node-1",
  tunnel: "none",
});
const web0 = workload({
  name: "web-0",
  namespace: "shop",
  ip: "10.213.2.5",
  node: "node-2",
  serviceAccount: "web",
  services: backs(web),
});
const web1 = workload({
  name: "web-1",
  namespace: "shop",
  ip: "10.213.1.8",
  node: "node-1",
  serviceAccount: "web",
  services: backs(web),
});
const api0 = workload({
  name: "api-0",
  namespace: "shop",
  ip: "10.213.2.6",
  node: "node-2",
  serviceAccount: "api",
  services: backs(api),
});
const db = workload({ name: "db-0", namespace: "data", ip: "10.213.2.7", node: "node-2", tunnel: "none" });
const strictPod = workload({
  name: "vault-0",
  namespace: "sec",
  ip: "10.213.2.8",
  node: "node-2",
  mtlsMode: "strict",
});
const wp0 = workload({
  name: "waypoint-0",
  namespace: "shop",
  ip: "10.213.2.9",
  node: "node-2",
  serviceAccount: "waypoint",
  services: { [wpSvc.key]: [{ servicePort: 15008, targetPort: 15008 }] },
});
const denyRogue = policy({
  name: "deny-rogue",
  namespace: "shop",
  action: "deny",
  rules: [{ clauses: [{ matches: [{ principals: [{ exact: "cluster.local/ns/shop/sa/rogue" }] }] }] }],
});
const allowClientOnly = policy({
  name: "only-client",
  namespace: "sec",
  action: "allow",
  rules: [{ clauses: [{ matches: [{ principals: [{ exact: "cluster.local/ns/shop/sa/client-0" }] }] }] }],
});

const apiWaypoint: WaypointService = {
  key: api.key,
  gateway: "shop/waypoint",
  name: "api",
  namespace: "shop",
  hostname: api.hostname,
  vips: api.vips,
  ports: [{ port: 80, protocol: "http" }],
  routes: [
    {
      name: "HTTPRoute/shop/api/rule/0/match/0",
      kind: "http",
      match: { path: { type: "PathPrefix", value: "/flaky" } },
      filters: [{ type: "Fault", fault: { abort: { httpStatus: 503, percent: 100 } } }],
      backends: [{ cluster: `${api.key}:80`, weight: 1 }],
    },
    {
      name: "HTTPRoute/shop/api/rule/1/match/0",
      kind: "http",
      match: { path: { type: "PathPrefix", value: "/" } },
      filters: [{ type: "RequestHeaderModifier", modifier: { set: [{ name: "x-via", value: "waypoint" }] } }],
      backends: [{ cluster: `${api.key}:80`, weight: 1 }],
    },
  ],
  clusters: [
    {
      name: `${api.key}:80`,
      service: api.key,
      port: 80,
      protocol: "http",
      endpoints: [{ ip: "10.213.2.6", port: 8080, identity: spiffe("shop", "api") }],
    },
  ],
  authz: [
    { name: "shop/no-admin", action: "DENY", rules: [{ from: [], to: [{ paths: ["/admin*"] }], when: [] }] },
  ],
  jwtRules: [],
};

const model = {
  workloads: [client, rogue, late, plain, web0, web1, api0, db, strictPod, wp0],
  services: [web, api, empty, wpSvc],
  policies: [denyRogue, allowClientOnly],
};
const views: WhyViews = {
  model,
  ztunnels: {
    "node-1": { ready: true, enrolledIps: ["10.213.1.5", "10.213.1.6", "10.213.1.8"] },
    "node-2": { ready: true, enrolledIps: ["10.213.2.5", "10.213.2.6", "10.213.2.8"] },
  },
  waypoints: { "shop/waypoint": [apiWaypoint] },
};

const cases: {
  name: string;
  q: Parameters<typeof explainConnection>[1];
  verdict: WhyAnswer["verdict"];
  v?: WhyViews;
}[] = [
  { name: "allowed-service", q: { src: "shop/client-0", dst: "web" }, verdict: "allowed" },
  { name: "denied-by-policy", q: { src: "shop/rogue-0", dst: "web.shop", port: 80 }, verdict: "denied" },
  { name: "allow-no-match", q: { src: "shop/rogue-0", dst: "10.213.2.8", port: 9000 }, verdict: "denied" },
  {
    name: "allow-match-pod-ip",
    q: { src: "shop/client-0", dst: "10.213.2.8", port: 9000 },
    verdict: "allowed",
  },
  {
    name: "plaintext-strict",
    q: { src: "legacy/legacy-0", dst: "10.213.2.8", port: 9000 },
    verdict: "denied",
  },
  { name: "plaintext-permissive", q: { src: "legacy/legacy-0", dst: "shop/web" }, verdict: "allowed" },
  {
    name: "passthrough-not-enrolled",
    q: { src: "shop/client-0", dst: "10.213.2.7", port: 5432 },
    verdict: "allowed",
  },
  { name: "outside-mesh", q: { src: "shop/client-0", dst: "192.0.2.1", port: 443 }, verdict: "allowed" },
  { name: "not-captured-yet", q: { src: "shop/late-0", dst: "web" }, verdict: "allowed" },
  { name: "no-endpoint", q: { src: "shop/client-0", dst: "empty" }, verdict: "refused" },
  {
    name: "waypoint-routed",
    q: { src: "shop/client-0", dst: "api", path: "/items", method: "GET" },
    verdict: "allowed",
  },
  {
    name: "waypoint-fault",
    q: { src: "shop/client-0", dst: "api", port: 80, path: "/flaky" },
    verdict: "allowed",
  },
  {
    name: "waypoint-l7-denied",
    q: { src: "shop/client-0", dst: "10.96.0.30", port: 80, path: "/admin" },
    verdict: "denied",
  },
  {
    name: "waypoint-unknown",
    q: { src: "shop/client-0", dst: "api" },
    verdict: "unknown",
    v: { ...views, waypoints: {} },
  },
  {
    name: "ztunnel-unreachable",
    q: { src: "shop/rogue-0", dst: "web" },
    verdict: "denied",
    v: { ...views, ztunnels: {} },
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const a = explainConnection(c.v ?? views, c.q);
    t.equal(a.verdict, c.verdict, a.summary);
    const text = `${renderWhy(a)}\n`;
    const file = path.join(dir, `${c.name}.txt`);
    if (update) fs.writeFileSync(file, text);
    t.equal(text, fs.readFileSync(file, "utf8"), `golden ${c.name}.txt (UPDATE_GOLDEN=1 rewrites it)`);
  });
}

t.test("specific facts the answers carry", async (t) => {
  const denied = explainConnection(views, { src: "shop/rogue-0", dst: "web" });
  t.same(
    denied.endpoints.map((e) => [e.pod, e.authz?.policy, e.authz?.rule, e.enforcedBy]),
    [
      ["shop/web-0", "shop/deny-rogue", 0, "ztunnel-node-2"],
      ["shop/web-1", "shop/deny-rogue", 0, "ztunnel-node-1"],
    ],
    "every endpoint the round robin can pick, each judged by its own node's ztunnel",
  );
  const viaWp = explainConnection(views, { src: "shop/client-0", dst: "api", path: "/x" });
  t.equal(viaWp.plan?.viaWaypoint, true);
  t.equal(
    viaWp.endpoints[0]?.peer.identity,
    spiffe("shop", "waypoint"),
    "the endpoint sees the waypoint's identity",
  );
  t.equal(viaWp.source.captured, true);
  t.equal(explainConnection(views, { src: "shop/late-0", dst: "web" }).source.captured, false);
});

t.test("bad input says what is wrong", async (t) => {
  t.throws(() => explainConnection(views, { src: "client-0", dst: "web" }), { code: "WHY_INPUT" });
  t.throws(() => explainConnection(views, { src: "shop/nope", dst: "web" }), {
    message: /no pod shop\/nope/,
  });
  t.throws(() => explainConnection(views, { src: "shop/client-0", dst: "nosuch" }), {
    message: /no Service 'nosuch' in namespace 'shop'/,
  });
  t.throws(() => explainConnection(views, { src: "shop/client-0", dst: "10.213.2.5" }), {
    message: /give a port/,
  });
  t.same(splitDst("web:80"), { dst: "web", port: 80 });
  t.same(splitDst("10.96.0.20"), { dst: "10.96.0.20" });
  t.same(splitDst("[fd00::1]:8080"), { dst: "fd00::1", port: 8080 });
  t.same(splitDst("fd00::1"), { dst: "fd00::1" });
});

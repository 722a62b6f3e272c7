import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import t from "tap";
import { FilterSchema, WaypointServiceSchema } from "../../core/gen/waypoint_pb.js";
import type { WaypointService } from "../../core/model/waypoint.js";
import {
  ConfigCodecError,
  decodeServiceAny,
  decodeServiceBinary,
  encodeService,
  encodeServiceAny,
  encodeServiceBinary,
} from "../../waypoint/config-codec.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { waypointServiceHandler } from "../../waypoint/xds-handler.js";
import {
  closeClientAgent,
  cluster,
  cname,
  httpBackend,
  request,
  route,
  service,
} from "./waypoint-harness.js";

t.teardown(closeClientAgent);

const full: WaypointService = service({
  clusters: [
    cluster("a", [8080, 8081], {
      policy: {
        loadBalancer: { type: "CONSISTENT_HASH", header: "x-user" },
        connectionPool: { maxConnections: 10, maxPendingRequests: 5, maxRequestsPerConnection: 100 },
        outlierDetection: { consecutive5xxErrors: 5, baseEjectionTimeMs: 30000, maxEjectionPercent: 50 },
      },
    }),
    cluster("b", [9090], { protocol: "grpc", policy: { loadBalancer: { type: "LEAST_REQUEST" } } }),
  ],
  routes: [
    route("http/default/r/rule/0/match/0", {
      match: {
        path: { type: "RegularExpression", value: "/v[0-9]+/.*" },
        headers: [{ type: "Exact", name: "x-a", value: "1" }],
        queryParams: [{ type: "RegularExpression", name: "q", value: "a.*" }],
        method: "GET",
      },
      filters: [
        { type: "RequestHeaderModifier", modifier: { set: [{ name: "a", value: "b" }], remove: ["c"] } },
        { type: "ResponseHeaderModifier", modifier: { add: [{ name: "d", value: "e" }] } },
        { type: "URLRewrite", hostname: "h", path: { type: "ReplacePrefixMatch", value: "/x" } },
        { type: "RequestMirror", cluster: cname("b"), percent: 12.5 },
        {
          type: "CORS",
          cors: {
            allowOrigins: ["*"],
            allowMethods: ["GET"],
            allowHeaders: [],
            exposeHeaders: [],
            maxAgeSeconds: 10,
          },
        },
        {
          type: "Fault",
          fault: { delay: { fixedDelayMs: 5, percent: 1 }, abort: { grpcStatus: 14, percent: 2 } },
        },
      ],
      backends: [
        {
          cluster: cname("a"),
          weight: 90,
          filters: [{ type: "RequestHeaderModifier", modifier: { set: [{ name: "v", value: "1" }] } }],
        },
        { cluster: cname("b"), weight: 10 },
      ],
      timeouts: { requestMs: 1000, backendRequestMs: 300 },
      retry: { attempts: 3, codes: [502, 503], grpcCodes: [14], backoffMs: 25 },
    }),
    route("grpc/default/g/rule/0/match/0", {
      kind: "grpc",
      match: { grpc: { type: "Exact", service: "s", method: "m" } },
      backends: [],
    }),
    route("redirect", {
      filters: [{ type: "RequestRedirect", statusCode: 301, scheme: "https", port: 8443 }],
    }),
  ],
  rateLimit: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 },
  authz: [
    {
      name: "default/p",
      action: "DENY",
      rules: [
        {
          from: [{ principals: ["cluster.local/ns/x/sa/y"], notNamespaces: ["z"] }],
          to: [{ methods: ["POST"], paths: ["/admin*"], ports: [80] }],
          when: [{ key: "request.auth.claims[groups]", values: ["g"] }],
        },
      ],
    },
  ],
  jwtRules: [
    {
      issuer: "iss",
      audiences: ["aud"],
      jwks: '{"keys":[]}',
      outputClaimToHeaders: [{ header: "x-sub", claim: "sub" }],
    },
  ],
});

t.test("model → proto → binary → model round trip", async (t) => {
  t.same(decodeServiceBinary(encodeServiceBinary(full)), full);
  t.same(decodeServiceAny(encodeServiceAny(full), full.key), full);
});

t.test("bad resources name the field", async (t) => {
  const bad = (mut: (pb: ReturnType<typeof encodeService>) => void, field: RegExp) => {
    const pb = encodeService(full);
    mut(pb);
    const e = t.throws(() =>
      decodeServiceAny(anyPack(WaypointServiceSchema, pb), full.key),
    ) as ConfigCodecError;
    t.type(e, ConfigCodecError);
    t.match(e.message, field);
  };
  bad((pb) => {
    pb.routes[0]!.match!.path!.value = "/v[0-9+/(";
  }, /routes\[0\]\(http\/default\/r\/rule\/0\/match\/0\)\.match\.path\.value: invalid regular expression/);
  bad((pb) => {
    pb.routes[0]!.filters[0] = create(FilterSchema); // e.g. a filter kind this waypoint does not know
  }, /routes\[0\]\.filters\[0\]: unknown or empty filter/);
  bad((pb) => {
    pb.clusters[0]!.endpoints[0]!.port = 70000;
  }, /clusters\[0\]\.endpoints\[0\]\.port/);
  bad((pb) => {
    pb.ports[0]!.protocol = 0;
  }, /ports\[0\]\.protocol: unspecified/);
  bad((pb) => {
    pb.jwtRules[0]!.jwks = "{nope";
  }, /jwtRules\[0\]\.jwks: invalid JSON/);
  bad((pb) => {
    pb.key = "other/x";
  }, /key: does not match/);
});

t.test("xDS handler: a NACKed update keeps the last good config", async (t) => {
  const a = await httpBackend(t, "a");
  const wp = new Waypoint();
  await wp.start();
  t.teardown(() => wp.close());
  const handler = waypointServiceHandler(wp);
  const good = service({
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
  });
  handler({ added: [{ name: good.key, resource: encodeServiceAny(good) }], removed: [] });
  const { port } = await wp.listenTcp({ port: 0, dst: { ip: good.vips[0]!, port: 80 } });
  t.equal((await request(port)).status, 200);
  const broken = service({
    clusters: [],
    routes: [route("bad", { match: { path: { type: "RegularExpression", value: "(" } } })],
  });
  t.throws(
    () => handler({ added: [{ name: broken.key, resource: encodeServiceAny(broken) }], removed: [] }),
    /invalid regular expression/,
  );
  t.equal((await request(port)).status, 200, "still serving the last good config");
  handler({ added: [], removed: [good.key] });
  t.equal((await request(port)).status, 404, "removed service → 404");
});

t.test("explainRequest says what the data path does", async (t) => {
  const { explainRequest } = await import("../../waypoint/explain.js");
  const svc = service({
    clusters: [cluster("a", [1]), cluster("b", [2])],
    routes: [
      route("deny-me", {
        match: { path: { type: "PathPrefix", value: "/f" } },
        filters: [{ type: "Fault", fault: { abort: { httpStatus: 503, percent: 100 } } }],
      }),
      route("split", {
        backends: [
          { cluster: cname("a"), weight: 90 },
          { cluster: cname("b"), weight: 10 },
        ],
      }),
    ],
    authz: [
      {
        name: "default/no-admin",
        action: "DENY",
        rules: [{ from: [], to: [{ paths: ["/admin*"] }], when: [] }],
      },
    ],
  });
  t.match(explainRequest(svc, { method: "GET", url: "/admin", port: 80 }), {
    outcome: "denied",
    status: 403,
    policy: "default/no-admin",
  });
  t.match(explainRequest(svc, { method: "GET", url: "/f/x", port: 80 }), {
    outcome: "fault",
    route: "deny-me",
    abort: { httpStatus: 503 },
  });
  t.match(explainRequest(svc, { method: "GET", url: "/x", port: 80 }), {
    outcome: "routed",
    route: "split",
    backends: [
      { cluster: cname("a"), percent: 90 },
      { cluster: cname("b"), percent: 10 },
    ],
  });
});

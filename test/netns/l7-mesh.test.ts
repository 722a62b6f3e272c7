// The waypoint in a real local mesh: `ambit up` on test/fixtures/l7-mesh (two
// nodes, namespace `shop` behind its waypoint), then requests from a pod on
// node-1 through its ztunnel, the waypoint and node-2's ztunnel to real
// backends: a 90/10 split over 1,000 requests, retries hiding a backend that
// fails 1 in 3, a 100% abort, a mirror (live and dead), L7 denial (403), JWT
// (401 / 200), a Service that opts out of the waypoint, and bad routes
// written into the running mesh's directory (conditions with reasons, the
// other routes unaffected). One mesh for all of it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import {
  binomialBounds,
  copyFixture,
  FIXTURE_DIR,
  getInPod,
  load,
  type LoadSpec,
  makeJwt,
  metricSum,
} from "./l7-fixture.js";
import { ambit } from "./mesh-fixture.js";
import { needsRoot, testMeshId, waitForFile } from "./netns-fixture.js";

interface Status {
  pods: { key: string; ip: string; ready: boolean; enrolled?: boolean }[];
  errors: { message: string; field?: string }[];
  conditions?: { object: string; conditions: string[] }[];
}

t.test("L7 in a real mesh: split, retry, abort, mirror, authz, JWT, opt-out, bad input", { skip: needsRoot, timeout: 300_000 }, async (t) => {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-l7-"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-l7-yaml-"));
  const meshId = testMeshId();
  process.env.AMBIT_RUN_DIR = runDir; // this process reads the state and logs too
  const { destroyMeshNetwork } = await import("../../local/network.js");
  t.teardown(async () => {
    await ambit(runDir, ["down", "--mesh-id", meshId], 60_000);
    await destroyMeshNetwork(meshId, { graceMs: 500 }).catch(() => undefined);
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  copyFixture(dir);
  const jwt = await makeJwt();
  fs.writeFileSync(path.join(dir, "jwt.yaml"), jwt.yaml);

  const started = Date.now();
  const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "120"], 180_000);
  t.equal(up.code, 0, "ambit up", { stderr: up.stderr });
  if (up.code !== 0) return;
  t.comment(`mesh up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const status = async (): Promise<Status> =>
    JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as Status;
  const first = await status();
  const waypointPod = first.pods.find((p) => p.key.startsWith("shop/waypoint"))?.key;
  t.ok(waypointPod, "the waypoint runs as a pod of shop");
  t.match(first.pods.find((p) => p.key === "shop/client"), { ready: true, enrolled: true });
  const run = (specs: LoadSpec[]) => load(runDir, meshId, "shop/client", specs);
  const metrics = () => getInPod(runDir, meshId, waypointPod!, 15020, "/metrics");
  const stats = async (svc: string) =>
    (await run([{ url: `http://${svc}.shop/__stats`, n: 1 }]))[0]!.last!.json as {
      served: number;
      failed: number;
      paths: Record<string, number>;
      hosts: Record<string, number>;
    };

  // The waypoint has its routes once the header-pinned canary answers v2.
  const [ready] = await run([
    { url: "http://reviews.shop/", headers: { "x-canary": "always" }, until: 200, untilMs: 30_000 },
  ]);
  t.equal(ready!.last?.json?.version, "v2", "the waypoint routes (x-canary pins v2)");

  await t.test("90/10 weight split over 1,000 requests", async (t) => {
    const before = metricSum(await metrics(), "istio_requests_total", {
      reporter: "waypoint",
      destination_service: "reviews.shop.svc.cluster.local",
    });
    const t0 = Date.now();
    const [r] = await run([{ url: "http://reviews.shop/", n: 1000, concurrency: 8 }]);
    t.comment(`1,000 requests in ${Date.now() - t0} ms (exec included)`);
    t.same(r!.statuses, { 200: 1000 }, `all 200 ${JSON.stringify(r!.errors)}`);
    const v2 = r!.versions.v2 ?? 0;
    const [lo, hi] = binomialBounds(1000, 0.1, 5);
    t.ok(v2 >= lo && v2 <= hi, `v2 got ${v2} of 1000, within [${lo}, ${hi}] (5 sigma)`);
    t.equal((r!.versions.v1 ?? 0) + v2, 1000, "v1 answered the rest");
    const after = metricSum(await metrics(), "istio_requests_total", {
      reporter: "waypoint",
      destination_service: "reviews.shop.svc.cluster.local",
    });
    t.ok(after - before >= 1000, `the waypoint counted them (${after - before})`);
  });

  await t.test("a backend failing 1 in 3 succeeds with the route's retry", async (t) => {
    // One at a time: a retry then always lands on a request the backend answers.
    const [r] = await run([{ url: "http://flaky.shop/", n: 60 }]);
    t.same(r!.statuses, { 200: 60 }, "every request 200", { errors: r!.errors });
    const s = await stats("flaky");
    t.ok(s.failed >= 20, `the backend did fail ${s.failed} of ${s.served}`);
    t.equal(s.served, 60 + s.failed, "each failure was retried once");
    t.ok(metricSum(await metrics(), "ambit_waypoint_retries_total") >= s.failed, "retries are counted");
  });

  await t.test("a 100% abort returns the configured status", async (t) => {
    const [r] = await run([{ url: "http://broken.shop/anything", n: 20, concurrency: 2 }]);
    t.same(r!.statuses, { 418: 20 }, "all 418 (FaultInjection teapot)");
    t.notOk((await stats("details")).paths["/anything"], "the backend never saw them");
  });

  await t.test("mirror: the copy arrives; a dead mirror does not touch the main path", async (t) => {
    const [live, dead] = await run([
      { url: "http://details.shop/live/1", n: 10 },
      { url: "http://details.shop/dead/1", n: 20, concurrency: 2, timeoutMs: 3000 },
    ]);
    t.same(live!.statuses, { 200: 10 }, "mirrored requests answered");
    t.same(dead!.statuses, { 200: 20 }, "requests mirrored to a blackhole and to no endpoints answered");
    t.ok(dead!.maxMs < 1500, `... without waiting on the mirror (slowest ${dead!.maxMs} ms)`);
    // The copies are sent after the main request started: wait for them where they land.
    const [copies] = await run([{ url: "http://details-shadow.shop/__stats", until: 200 }]);
    let shadow = copies!.last!.json as { paths: Record<string, number>; hosts: Record<string, number> };
    for (let i = 0; i < 20 && (shadow.paths["/live/1"] ?? 0) < 10; i++) shadow = await stats("details-shadow");
    t.equal(shadow.paths["/live/1"], 10, "the shadow got a copy of each");
    t.ok(shadow.hosts["details.shop-shadow"], "with Host <host>-shadow");
    t.notOk(shadow.paths["/dead/1"], "only its own route's copies");
    t.ok(metricSum(await metrics(), "ambit_waypoint_mirrored_total") >= 10, "mirrored copies are counted");
  });

  await t.test("L7 authorization and JWT", async (t) => {
    const [admin, home, none, forged, valid] = await run([
      { url: "http://reviews.shop/admin/config", n: 3 },
      { url: "http://reviews.shop/", n: 3 },
      { url: "http://secure.shop/", n: 3 },
      { url: "http://secure.shop/", n: 3, headers: { authorization: `Bearer ${jwt.forged}` } },
      { url: "http://secure.shop/", n: 3, headers: { authorization: `Bearer ${jwt.valid}` } },
    ]);
    t.same(admin!.statuses, { 403: 3 }, "a path denied by policy: 403");
    t.same(home!.statuses, { 200: 3 }, "the rest of reviews: 200");
    t.same(none!.statuses, { 401: 3 }, "no JWT where a request principal is required: 401");
    t.match(none!.last?.headers?.["www-authenticate"], /Bearer/, "with WWW-Authenticate");
    t.same(forged!.statuses, { 401: 3 }, "a JWT signed by another key: 401");
    t.same(valid!.statuses, { 200: 3 }, "a valid JWT passes");
    const m = await metrics();
    t.ok(metricSum(m, "ambit_waypoint_denied_total", { reason: "policy" }) >= 3, "denials counted");
    t.ok(metricSum(m, "ambit_waypoint_denied_total", { reason: "jwt_missing" }) >= 3, "missing JWTs counted");
  });

  await t.test("a Service without the waypoint never touches it", async (t) => {
    const total = (m: string) => metricSum(m, "istio_requests_total", { reporter: "waypoint" });
    const before = await metrics();
    const [r] = await run([{ url: "http://direct.shop/", n: 20, concurrency: 2 }]);
    t.same(r!.statuses, { 200: 20 }, "direct answers");
    const after = await metrics();
    t.equal(total(after), total(before), "the waypoint counted no request");
    t.notOk(after.includes('destination_service="direct.shop'), "and has no series for direct");
    // node-1's ztunnel logs each connection when it closes (load.mjs closes them at the end).
    const { logSources } = await import("../../local/supervisor-logs.js");
    const { meshPaths } = await import("../../local/supervisor-plan.js");
    const file = logSources(meshPaths(meshId), "ztunnel-node-1")[0]!.file;
    const directIp = first.pods.find((p) => p.key === "shop/direct")?.ip;
    const lines = (text: string, svc: string) =>
      text
        .split("\n")
        .filter((l) => l.includes('"connection complete"') && l.includes(`"service":"${svc}.shop.svc.cluster.local"`))
        .map((l) => JSON.parse(l) as { direction: string; hbone?: string; waypoint?: boolean });
    await waitForFile(file, (text) => lines(text, "direct").length > 0);
    const direct = lines(fs.readFileSync(file, "utf8"), "direct").filter((l) => l.direction === "outbound");
    t.ok(direct.length > 0, "node-1's ztunnel logged the connections to direct");
    t.ok(
      direct.every((l) => l.waypoint === false && l.hbone === `${directIp}:15008`),
      "tunnelled straight to the pod (HBONE to its IP), not through the waypoint",
      { direct, directIp },
    );
    const viaWaypoint = lines(fs.readFileSync(file, "utf8"), "reviews").filter((l) => l.direction === "outbound");
    t.ok(viaWaypoint.some((l) => l.waypoint === true), "(while reviews' connections went to the waypoint)");
  });

  await t.test("bad input: conditions with reasons, the other routes keep working", async (t) => {
    fs.copyFileSync(path.join(FIXTURE_DIR, "edits", "bad-input.yaml"), path.join(dir, "bad-input.yaml"));
    const cond = (s: Status, route: string) =>
      s.conditions?.find((c) => c.object === `HTTPRoute shop/${route}`)?.conditions ?? [];
    let s = await status();
    for (let i = 0; i < 60 && !cond(s, "extra-a-newer").length; i++) s = await status();
    t.match(cond(s, "extra-unknown-backend"), ["Accepted=True (Accepted)", "ResolvedRefs=False (BackendNotFound)"]);
    t.same(cond(s, "extra-bad-regex"), [
      "Accepted=True (Accepted)",
      "PartiallyInvalid=True (UnsupportedValue)",
      "ResolvedRefs=True (ResolvedRefs)",
    ]);
    t.match(cond(s, "extra-unknown-filter"), ["Accepted=True (Accepted)", "ResolvedRefs=False (InvalidKind)"]);
    t.ok(cond(s, "extra-a-newer").includes("PartiallyInvalid=True (Conflicted)"), "the newer conflicting route says so", { got: cond(s, "extra-a-newer") });
    t.same(cond(s, "extra-z-older"), ["Accepted=True (Accepted)", "ResolvedRefs=True (ResolvedRefs)"], "the older one wins");
    t.ok(
      s.errors.some((e) => e.message.includes("extra-bogus-filter-type") && e.message.includes("spec.rules[0].filters[0].type")),
      "an unknown filter type is refused with object and field named",
      { errors: s.errors.map((e) => e.message) },
    );
    const { adminJson } = await import("../../local/supervisor-logs.js");
    const { meshPaths } = await import("../../local/supervisor-plan.js");
    const full = await adminJson<{ kind: string; name: string; status: { parents?: { conditions: { type: string; message: string }[] }[] } }[]>(
      meshPaths(meshId).controllerSocket,
      "/debug/status",
      "the controller",
    );
    const msg = (route: string, type: string) =>
      full.find((o) => o.kind === "HTTPRoute" && o.name === route)?.status.parents?.[0]?.conditions.find((c) => c.type === type)?.message ?? "";
    t.match(msg("extra-unknown-backend", "ResolvedRefs"), /spec\.rules\[1\]\.backendRefs\[0\]\.name: Service shop\/no-such-service not found/);
    t.match(msg("extra-bad-regex", "PartiallyInvalid"), /spec\.rules\[1\]\.matches\[0\]\.path\.value: invalid regular expression/);
    t.match(msg("extra-unknown-filter", "ResolvedRefs"), /example\.com\/Bogus is not supported/);
    t.match(msg("extra-a-newer", "PartiallyInvalid"), /HTTPRoute shop\/extra-z-older/);

    const [ok1, ...rest] = await run([
      { url: "http://extra.shop/ok-1", until: 200, untilMs: 20_000 },
      { url: "http://extra.shop/ok-2", n: 2 },
      { url: "http://extra.shop/ok-3", n: 2 },
      { url: "http://extra.shop/ok-4", n: 2 },
      { url: "http://extra.shop/unknown-backend", n: 2 },
      { url: "http://extra.shop/ext", n: 2 },
      { url: "http://extra.shop/same", n: 5 },
      { url: "http://extra.shop/bogus", n: 2 },
      { url: "http://reviews.shop/", n: 100, concurrency: 4 },
      { url: "http://secure.shop/", n: 2, headers: { authorization: `Bearer ${jwt.valid}` } },
      { url: "http://broken.shop/", n: 2 },
    ]);
    const [ok2, ok3, ok4, unknown, ext, same, bogus, reviews, secure, broken] = rest;
    t.equal(ok1!.last?.status, 200, "the new routes arrived at the waypoint");
    for (const [r, name] of [[ok2, "ok-2"], [ok3, "ok-3"], [ok4, "ok-4"]] as const)
      t.same(r!.statuses, { 200: 2 }, `the good rule next to a bad one works (${name})`);
    t.same(unknown!.statuses, { 500: 2 }, "a rule with an unknown backend: 500");
    t.same(ext!.statuses, { 500: 2 }, "a rule with an unknown filter: 500");
    t.same(same!.versions, { v1: 5 }, "the conflict goes to the older route (reviews-v1)");
    t.same(bogus!.statuses, { 404: 2 }, "the refused route is absent: no route of extra matches /bogus (404)");
    t.same(reviews!.statuses, { 200: 100 }, "reviews still answers");
    t.ok((reviews!.versions.v1 ?? 0) > 50 && (reviews!.versions.v2 ?? 0) < 50, "with its split");
    t.same(secure!.statuses, { 200: 2 }, "JWT still accepted on secure");
    t.same(broken!.statuses, { 418: 2 }, "the abort still applies");

    // Fix the regex while the mesh runs: the condition clears and the rule serves.
    const file = path.join(dir, "bad-input.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace('"/re/([a-z"', '"/re/([a-z]+)"'));
    s = await status();
    for (let i = 0; i < 60 && cond(s, "extra-bad-regex").some((c) => c.startsWith("PartiallyInvalid")); i++)
      s = await status();
    t.same(cond(s, "extra-bad-regex"), ["Accepted=True (Accepted)", "ResolvedRefs=True (ResolvedRefs)"], "fixed: the condition clears");
    const [re] = await run([{ url: "http://extra.shop/re/abc", until: 200, untilMs: 20_000 }]);
    t.equal(re!.last?.status, 200, "and the fixed rule serves");
  });
  t.comment(`whole test ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

// examples/l7 as a user would write it: parsed by the local provider,
// translated, carried through the codec, and served by a real waypoint whose
// clusters point at local backends (one per Service). Shows the canary
// split, the fault, the mirror, the rate limit and the denial.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { assembleSnapshot, listYamlFiles, parseFile } from "../../controller/provider/local/index.js";
import { translate } from "../../controller/translate/index.js";
import { translateWaypoints } from "../../controller/translate/waypoint.js";
import { decodeServiceAny, encodeServiceAny } from "../../waypoint/config-codec.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { type Backend, closeClientAgent, httpBackend, request } from "./waypoint-harness.js";

t.teardown(closeClientAgent);

t.test("examples/l7: canary, fault, mirror, rate limit, denial", async (t) => {
  const dir = join(process.cwd(), "examples/l7");
  const { files } = await listYamlFiles(dir);
  const parsed = files.map((file) => ({
    file,
    parse: parseFile(readFileSync(join(dir, file), "utf8"), file),
  }));
  t.same(
    parsed.flatMap((p) => p.parse.errors.map((e) => e.message)),
    [],
    "the YAML parses",
  );
  const { snapshot, errors } = assembleSnapshot(
    parsed.map((p) => ({ file: p.file, objects: p.parse.objects })),
    { pods: new Map(), nodes: new Map() },
  );
  t.same(
    errors.map((e) => e.message),
    [],
  );
  const mesh = translate(snapshot);
  const out = translateWaypoints(snapshot, mesh);
  t.same(
    out.errors.map((e) => e.message),
    [],
    "no translation errors",
  );
  for (const s of out.statuses.filter((x) => x.kind === "HTTPRoute")) {
    const parents = (s.status.parents as { conditions: { type: string; status: string }[] }[]) ?? [];
    t.ok(
      parents.every((p) => p.conditions.every((c) => c.status === "True")),
      `${s.name}: Accepted and ResolvedRefs`,
    );
  }
  t.equal(out.waypoints.length, 1);

  const backends = new Map<string, Backend>();
  for (const name of ["reviews", "reviews-v1", "reviews-v2", "ratings", "details", "details-shadow"])
    backends.set(name, await httpBackend(t, name));
  const wp = new Waypoint();
  await wp.start();
  t.teardown(() => wp.close());
  wp.applyServices(
    out.waypoints[0]!.services.map((s) => {
      for (const c of s.clusters) {
        const name = c.service.split("/")[1]!.split(".")[0]!;
        c.endpoints = [{ ip: "127.0.0.1", port: backends.get(name)!.port }];
      }
      return decodeServiceAny(encodeServiceAny(s), s.key);
    }),
  );
  const { port } = await wp.listenTcp({ port: 0, dst: { ip: "0.0.0.0", port: 0 } });
  const get = (host: string, path = "/", headers: Record<string, string> = {}) =>
    request(port, { path, headers: { host, ...headers } });

  // canary
  for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => get("reviews.shop")));
  const v2 = backends.get("reviews-v2")!.seen.length;
  t.ok(v2 > 4 && v2 < 45, `10% canary: v2 got ${v2} of 200`);
  t.equal(backends.get("reviews-v1")!.seen.length + v2, 200);
  t.equal((await get("reviews.shop", "/", { "x-canary": "always" })).json().backend, "reviews-v2");
  // denial
  t.equal((await get("reviews.shop", "/admin/config")).status, 403);
  // fault
  t.equal((await get("ratings.shop", "/broken")).status, 503);
  const t0 = Date.now();
  t.equal((await get("ratings.shop", "/slow")).status, 200);
  t.ok(Date.now() - t0 >= 950, "delayed by 1s");
  // mirror + rate limit (5 tokens)
  const copies = backends.get("details-shadow")!;
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await get("details.shop", `/item/${i}`)).status);
  t.same(codes, [200, 200, 200, 200, 200, 429, 429]);
  while (copies.seen.length < 5) await copies.next();
  t.equal(copies.seen[0]!.headers.host, "details.shop-shadow");
});

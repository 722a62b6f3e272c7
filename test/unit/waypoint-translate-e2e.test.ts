// From YAML to requests: the bad-input golden case translated, carried
// through the codec (as xDS would), applied to a real waypoint whose
// endpoints are rewritten to a local backend. The invalid parts answer with
// errors; the valid routes work.
import { join } from "node:path";
import t from "tap";
import { translate } from "../../controller/translate/index.js";
import { translateWaypoints } from "../../controller/translate/waypoint.js";
import { decodeServiceAny, encodeServiceAny } from "../../waypoint/config-codec.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { loadCase } from "./translate-harness.js";
import { closeClientAgent, httpBackend, request } from "./waypoint-harness.js";

t.teardown(closeClientAgent);

t.test("bad routes answer errors, good routes unaffected", async (t) => {
  const { snapshot } = await loadCase(join(process.cwd(), "test/fixtures/waypoint-translate/bad-input"));
  const mesh = translate(snapshot);
  const out = translateWaypoints(snapshot, mesh);
  const svc = out.waypoints[0]!.services.find((s) => s.name === "web")!;
  const backend = await httpBackend(t, "web");
  for (const c of svc.clusters)
    c.endpoints = c.endpoints.map(() => ({ ip: "127.0.0.1", port: backend.port }));
  const wire = decodeServiceAny(encodeServiceAny(svc), svc.key);
  const wp = new Waypoint();
  await wp.start();
  t.teardown(() => wp.close());
  wp.applyServices([wire]);
  const { port } = await wp.listenTcp({ port: 0, dst: { ip: svc.vips[0]!, port: 80 } });
  const good = await request(port, { path: "/good/x" });
  t.equal(good.status, 200, "valid rule works");
  t.notOk(backend.seen[0]!.headers["x-loser"], "the older route wins a tie");
  t.equal((await request(port, { path: "/missing" })).status, 500, "unknown backend → 500");
  t.equal((await request(port, { path: "/kind" })).status, 500, "invalid backend kind → 500");
  t.equal((await request(port, { path: "/fault" })).status, 500, "missing FaultInjection → 500");
  t.equal((await request(port, { path: "/items/1" })).status, 404, "invalid regex rule dropped");
  t.equal((await request(port, { path: "/unknown-filter" })).status, 404, "rule with unknown filter dropped");
});

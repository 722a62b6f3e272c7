// The waypoint's configuration over real delta xDS: the controller's push
// server publishes ambit.v1.WaypointService resources, the waypoint's xDS
// client applies them through the handler, a bad resource is NACKed with the
// field in the message while the last good config keeps serving, and
// services of another waypoint are ignored.
import t from "tap";
import { DeltaAdsClient } from "../../core/xds/client.js";
import { encodeServiceAny, WAYPOINT_SERVICE_TYPE_URL } from "../../waypoint/config-codec.js";
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
import { nextEvent, startAds } from "./xds-harness.js";

t.teardown(closeClientAgent);

t.test("WaypointService over delta ADS: apply, NACK keeps last good, other waypoints ignored", async (t) => {
  const a = await httpBackend(t, "a");
  const b = await httpBackend(t, "b");
  const ads = await startAds();
  t.teardown(() => ads.close());
  const wp = new Waypoint();
  await wp.start();
  t.teardown(() => wp.close());
  const client = new DeltaAdsClient({
    address: ads.address,
    node: {
      id: "waypoint~127.0.0.1~waypoint.default~default.svc.cluster.local",
      metadata: { "ambit.dev/role": "waypoint" },
    },
    handlers: [{ typeUrl: WAYPOINT_SERVICE_TYPE_URL, apply: waypointServiceHandler(wp, "default/waypoint") }],
  });
  t.teardown(() => client.close());
  const toA = service({
    gateway: "default/waypoint",
    clusters: [cluster("a", [a.port])],
    routes: [route("r", { backends: [{ cluster: cname("a"), weight: 1 }] })],
  });
  const other = service({
    key: "default/other.default.svc.cluster.local",
    hostname: "other.default.svc.cluster.local",
    name: "other",
    vips: ["10.96.0.99"],
    gateway: "default/elsewhere",
    clusters: [cluster("b", [b.port])],
    routes: [],
  });
  const firstAck = nextEvent(ads.ads, "ack");
  ads.ads.publish(
    WAYPOINT_SERVICE_TYPE_URL,
    new Map([
      [toA.key, encodeServiceAny(toA)],
      [other.key, encodeServiceAny(other)],
    ]),
  );
  client.start();
  await firstAck;
  const { port } = await wp.listenTcp({ port: 0, dst: { ip: toA.vips[0]!, port: 80 } });
  t.equal((await request(port)).json().backend, "a");
  t.notOk(wp.state.services.has(other.key), "another waypoint's service is ignored");

  const bad = service({
    gateway: "default/waypoint",
    clusters: [cluster("b", [b.port])],
    routes: [
      route("bad", {
        match: { path: { type: "RegularExpression", value: "[" } },
        backends: [{ cluster: cname("b"), weight: 1 }],
      }),
    ],
  });
  const nack = nextEvent<{ message: string }>(ads.ads, "nack");
  ads.ads.publish(WAYPOINT_SERVICE_TYPE_URL, new Map([[bad.key, encodeServiceAny(bad)]]));
  t.match((await nack).message, /routes\[0\]\(bad\)\.match\.path\.value: invalid regular expression/);
  t.equal((await request(port)).json().backend, "a", "last good config still serves");

  const toB = service({
    gateway: "default/waypoint",
    clusters: [cluster("b", [b.port])],
    routes: [route("r", { backends: [{ cluster: cname("b"), weight: 1 }] })],
  });
  const ack = nextEvent(ads.ads, "ack");
  ads.ads.publish(WAYPOINT_SERVICE_TYPE_URL, new Map([[toB.key, encodeServiceAny(toB)]]));
  await ack;
  t.equal((await request(port)).json().backend, "b", "a good update applies");
});

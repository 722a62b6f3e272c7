// The waypoint on its production path, in one process on loopback, for the
// tests that need it: a client opens HBONE (mTLS, HTTP/2 CONNECT) to the
// waypoint with :authority VIP:80; the waypoint opens its own HBONE to the
// endpoint's "ztunnel" (an HboneServer that connects the app). Counts the
// CONNECT streams and app connections and records the identities the
// backend's ztunnel saw.
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import type { WaypointService } from "../../core/model/waypoint.js";
import { HboneUpstream } from "../../waypoint/upstream/hbone-upstream.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
export const WAYPOINT_IP = ip(2);
export const POD_IP = ip(3);
export const CLIENT = spiffe("default", "client");
export const WAYPOINT = spiffe("default", "waypoint");
export const BACKEND = spiffe("default", "web");

type Teardown = { teardown: (fn: () => unknown) => void };

/** Client → HBONE → waypoint → HBONE → "ztunnel" → app (listening on POD_IP). */
export async function hboneWaypointMesh(
  t: Teardown,
  app: net.Server,
  svc: (appPort: number) => WaypointService,
) {
  const pki = await makePki();
  const certs = pki.source();
  let appConns = 0;
  app.on("connection", () => appConns++);
  await new Promise<void>((r) => app.listen(0, POD_IP, r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        app.close(() => r());
        if (app instanceof http.Server) app.closeAllConnections();
      }),
  );
  let connects = 0;
  const peers: (string | undefined)[] = [];
  const ztunnel = new HboneServer({
    handler: (stream, info) => {
      connects++;
      peers.push(info.peerIdentity);
      const s = net.connect(info.authority.port, info.authority.ip, () => {
        stream.respond({ ":status": 200 });
        stream.pipe(s);
        s.pipe(stream);
      });
      s.on("error", () => stream.destroy());
      stream.on("close", () => s.destroy());
    },
  });
  const zl = await ztunnel.listen({ host: POD_IP, port: 0 }, { cert: () => certs.get(BACKEND), name: "pod" });
  t.teardown(() => ztunnel.close());
  const wpClient = new HboneClient({ certs, connectTimeoutMs: 3000 });
  t.teardown(() => wpClient.destroy());
  const wp = new Waypoint({
    upstream: (state) =>
      new HboneUpstream({
        client: wpClient,
        identity: WAYPOINT,
        ip: "",
        identityOf: (i, p) => state.identityOf(i, p),
        hbonePort: zl.address().port,
      }),
  });
  await wp.start();
  t.teardown(() => wp.close());
  wp.applyServices([svc((app.address() as AddressInfo).port)]);
  const wpServer = new HboneServer({
    handler: (stream, info) => {
      stream.respond({ ":status": 200 });
      wp.serveStream(stream, {
        ...(info.peerIdentity ? { peerIdentity: info.peerIdentity } : {}),
        dst: info.authority,
        sourceIp: info.peerAddress,
      });
    },
  });
  const wl = await wpServer.listen(
    { host: WAYPOINT_IP, port: 0 },
    { cert: () => certs.get(WAYPOINT), name: "waypoint" },
  );
  t.teardown(() => wpServer.close());
  const client = new HboneClient({ certs, connectTimeoutMs: 3000 });
  t.teardown(() => client.destroy());
  /** A tunnel to the waypoint for VIP 10.96.0.10:80, as `srcIdentity`. */
  const tunnel = (srcIdentity: string = CLIENT) =>
    client.connect({
      srcIdentity,
      srcIp: "",
      dstIdentity: WAYPOINT,
      dstIp: WAYPOINT_IP,
      dstPort: wl.address().port,
      authority: "10.96.0.10:80",
    });
  return { tunnel, connects: () => connects, appConns: () => appConns, peers };
}

// The full L4 path in one process on loopback (no namespaces): a client
// socket → outbound (as if captured on 15001) → HBONE (real TLS 1.3 mTLS,
// real HTTP/2) to the server pod's IP:15008 → inbound → the application.
// 127.a.b.x addresses play the pod IPs.
import { once } from "node:events";
import type { ServerHttp2Stream } from "node:http2";
import net from "node:net";
import t from "tap";
import { parsePeerBaggage } from "../../core/hbone/baggage.js";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer, type HboneStreamInfo } from "../../core/hbone/server.js";
import type { IpPort } from "../../core/hbone/types.js";
import { tcpMetrics } from "../../core/telemetry/metrics.js";
import { authzDenials, connectFailures, inboundRefused } from "../../ztunnel/proxy/conn-telemetry.js";
import { InboundProxy } from "../../ztunnel/proxy/inbound.js";
import { OutboundProxy } from "../../ztunnel/proxy/outbound.js";
import { PlaintextInboundProxy } from "../../ztunnel/proxy/plaintext-inbound.js";
import { MeshState, workloadIdentity } from "../../ztunnel/state/mesh-state.js";
import { makePki } from "./fixtures-pki.js";
import {
  type AppConnEnd,
  connectFrom,
  dial,
  loopbackNet,
  metricValue,
  policy,
  readAll,
  service,
  TestApp,
  workload,
} from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const CLIENT_IP = ip(10);
const SERVER_IP = ip(20);
const OTHER_LOCAL_IP = ip(21);
const REMOTE_POD_IP = ip(30);
const PLAIN_IP = ip(40);
const UNENROLLED_IP = ip(41);
const WAYPOINT_IP = ip(50);
const VIP = ip(100);
const VIP_WP = ip(101);
const VIP_EMPTY = ip(102);

const pki = await makePki();
const certs = pki.source();

// Applications.
const app = new TestApp();
const APP_PORT = await app.listen(SERVER_IP);
const plainApp = new TestApp();
const PLAIN_PORT = await plainApp.listen(PLAIN_IP);
const unenrolledApp = new TestApp();
const UNENROLLED_PORT = await unenrolledApp.listen(UNENROLLED_IP);
t.teardown(() => Promise.all([app.close(), plainApp.close(), unenrolledApp.close()]));

// The model.
const svc = service({ name: "svc-b", namespace: "b", vip: VIP, port: 80, targetPort: APP_PORT });
const svcWp = service({
  name: "svc-wp",
  namespace: "b",
  vip: VIP_WP,
  port: 80,
  targetPort: APP_PORT,
  waypoint: { address: WAYPOINT_IP, hboneMtlsPort: 15008 },
});
const svcEmpty = service({ name: "empty", namespace: "b", vip: VIP_EMPTY, port: 80, targetPort: 8080 });
const client = workload({ name: "client", namespace: "a", ip: CLIENT_IP, node: "node-1" });
const server = workload({
  name: "server",
  namespace: "b",
  ip: SERVER_IP,
  node: "node-2",
  services: {
    [svc.key]: [{ servicePort: 80, targetPort: APP_PORT }],
    [svcWp.key]: [{ servicePort: 80, targetPort: APP_PORT }],
  },
});
const otherLocal = workload({ name: "other", namespace: "b", ip: OTHER_LOCAL_IP, node: "node-2" });
const remotePod = workload({ name: "remote", namespace: "c", ip: REMOTE_POD_IP, node: "node-3" });
const unenrolled = workload({
  name: "legacy",
  namespace: "d",
  ip: UNENROLLED_IP,
  node: "node-2",
  tunnel: "none",
});
const waypoint = workload({
  name: "waypoint",
  namespace: "b",
  ip: WAYPOINT_IP,
  node: "node-2",
  serviceAccount: "waypoint",
});
const state = new MeshState();
state.applyAddresses([svc, svcWp, svcEmpty, client, server, otherLocal, remotePod, unenrolled, waypoint]);

// node-1's ztunnel: outbound.
const hbone = new HboneClient({ certs, bindSourceIp: true });
const outbound = new OutboundProxy({ state, hbone });
t.teardown(() => hbone.destroy());

// node-2's ztunnel: HBONE in-pod listener for the server pod, plaintext inbound.
const inbound = new InboundProxy({ state, node: "node-2" });
const hboneServer = new HboneServer({ handler: inbound.handler });
await hboneServer.listen(
  { host: SERVER_IP, port: 15008 },
  { cert: () => certs.get(workloadIdentity(server)), podUid: server.uid, name: "server" },
);
t.teardown(() => hboneServer.close());
const plaintext = new PlaintextInboundProxy({ state, node: "node-2" });
const plaintextCapture = net.createServer({ allowHalfOpen: true }, (s) =>
  plaintext.handlePlaintextInbound(s, { origDst: { ip: SERVER_IP, port: APP_PORT }, podUid: server.uid }),
);
plaintextCapture.listen(0, SERVER_IP);
await once(plaintextCapture, "listening");
t.teardown(() => plaintextCapture.close());

// A waypoint stand-in: an HBONE server that records what it was asked for and echoes.
const waypointSeen: HboneStreamInfo[] = [];
const waypointServer = new HboneServer({
  handler: (stream: ServerHttp2Stream, info: HboneStreamInfo) => {
    waypointSeen.push(info);
    stream.respond({ ":status": 200 });
    stream.pipe(stream);
  },
});
await waypointServer.listen(
  { host: WAYPOINT_IP, port: 15008 },
  { cert: () => certs.get(workloadIdentity(waypoint)) },
);
t.teardown(() => waypointServer.close());

/** As if the client pod's connection to origDst was captured on 15001: a connected socket. */
async function captured(origDst: IpPort): Promise<net.Socket> {
  const port = await captureFor(origDst);
  return connectFrom(CLIENT_IP, CLIENT_IP, port);
}

/** A capture listener for one original destination (closed after its first connection). */
async function captureFor(origDst: IpPort): Promise<number> {
  const capture = net.createServer({ allowHalfOpen: true }, (s) => {
    capture.close();
    outbound.handleOutbound(s, { origDst, source: client });
  });
  capture.listen(0, CLIENT_IP);
  await once(capture, "listening");
  return (capture.address() as net.AddressInfo).port;
}

const srcLabels = { reporter: "source", source_workload: "client", destination_workload: "server" };
const dstLabels = {
  reporter: "destination",
  source_principal: workloadIdentity(client),
  destination_workload: "server",
};

t.test("service VIP: bytes both ways over HBONE, half-close, metrics on both sides", async (tt) => {
  const opened = await metricValue(tcpMetrics.opened, { ...srcLabels, destination_service: svc.hostname });
  const sent = await metricValue(tcpMetrics.sent, srcLabels);
  const received = await metricValue(tcpMetrics.received, srcLabels);
  const dstClosed = await metricValue(tcpMetrics.closed, dstLabels);
  const s = await captured({ ip: VIP, port: 80 });
  s.write("hello");
  s.end(); // half-close: the application answers after our FIN
  const r = await readAll(s);
  tt.equal(r.data, "helloEND:5", "echo, then the response sent after the FIN");
  tt.ok(r.ended);
  tt.equal(r.error, undefined);
  await Promise.all([outbound.whenIdle(), inbound.whenIdle()]);
  tt.equal(
    await metricValue(tcpMetrics.opened, {
      ...srcLabels,
      destination_service: svc.hostname,
      connection_security_policy: "mutual_tls",
    }),
    opened + 1,
  );
  tt.equal(await metricValue(tcpMetrics.sent, srcLabels), sent + 5);
  tt.equal(await metricValue(tcpMetrics.received, srcLabels), received + 10);
  tt.equal(await metricValue(tcpMetrics.closed, dstLabels), dstClosed + 1, "the destination reported too");
});

t.test("half-close the other way: the application closes first, the client keeps sending", async (tt) => {
  const appEnd = once(app, "end") as Promise<[AppConnEnd]>;
  const s = await captured({ ip: VIP, port: 80 });
  const r = readAll(s);
  s.write("CLOSE");
  await once(s, "end");
  s.end("more after the server's FIN");
  const got = await r;
  tt.equal(got.data, "bye");
  tt.equal(got.error, undefined);
  const [end] = await appEnd;
  tt.equal(end.received, "CLOSEmore after the server's FIN", "bytes after the FIN still arrive");
  tt.notOk(end.hadError);
});

t.test("pod IP direct, larger payload intact", async (tt) => {
  const s = await captured({ ip: SERVER_IP, port: APP_PORT });
  const payload = "x".repeat(3 * 1024 * 1024);
  s.end(payload);
  const r = await readAll(s);
  tt.equal(r.data.length, payload.length + `END:${payload.length}`.length);
  tt.ok(r.data.endsWith(`END:${payload.length}`));
});

t.test("a reset by the application reaches the client", async (tt) => {
  const s = await captured({ ip: VIP, port: 80 });
  s.write("RESET");
  const r = await readAll(s);
  tt.equal(r.error, "ECONNRESET");
  await outbound.whenIdle();
});

t.test("a reset by the client reaches the application", async (tt) => {
  const appEnd = once(app, "end") as Promise<[AppConnEnd]>;
  const s = await captured({ ip: VIP, port: 80 });
  s.write("hi");
  await once(s, "data");
  s.resetAndDestroy();
  const [end] = await appEnd;
  tt.ok(end.hadError || end.code === "ECONNRESET", `the application saw a reset (${end.code})`);
  tt.equal(end.received, "hi");
});

t.test("a DENY policy refuses the connection and is counted", async (tt) => {
  state.applyPolicies([
    policy({
      name: "deny-a",
      namespace: "b",
      action: "deny",
      rules: [{ clauses: [{ matches: [{ namespaces: [{ exact: "a" }] }] }] }],
    }),
  ]);
  tt.teardown(() => state.applyPolicies([], ["b/deny-a"]));
  const denials = await metricValue(authzDenials, { reason: "deny_policy" });
  const failures = await metricValue(connectFailures, { direction: "outbound", reason: "denied" });
  const s = await captured({ ip: VIP, port: 80 });
  s.write("let me in");
  const r = await readAll(s);
  tt.equal(r.data, "", "nothing reached the application");
  tt.equal(r.error, "ECONNRESET");
  tt.equal(await metricValue(authzDenials, { reason: "deny_policy" }), denials + 1);
  tt.equal(await metricValue(connectFailures, { direction: "outbound", reason: "denied" }), failures + 1);
});

t.test("an ALLOW policy for another namespace denies by default-deny", async (tt) => {
  state.applyPolicies([
    policy({
      name: "allow-z",
      namespace: "b",
      action: "allow",
      rules: [{ clauses: [{ matches: [{ namespaces: [{ exact: "z" }] }] }] }],
    }),
  ]);
  tt.teardown(() => state.applyPolicies([], ["b/allow-z"]));
  const s = await captured({ ip: VIP, port: 80 });
  const r = await readAll(s);
  tt.equal(r.error, "ECONNRESET");
});

t.test("a CONNECT to a pod that is not local (or not the listener's pod) is refused", async (tt) => {
  const c = new HboneClient({ certs });
  tt.teardown(() => c.destroy());
  const before = await metricValue(inboundRefused, { reason: "NOT_LOCAL" });
  const req = (authority: string) => ({
    srcIdentity: workloadIdentity(client),
    srcIp: CLIENT_IP,
    dstIdentity: workloadIdentity(server),
    dstIp: SERVER_IP,
    authority,
  });
  tt.match(await c.connect(req(`${REMOTE_POD_IP}:80`)).catch((e: unknown) => e), {
    reason: "status",
    status: 400,
  });
  tt.match(await c.connect(req(`${OTHER_LOCAL_IP}:80`)).catch((e: unknown) => e), {
    reason: "status",
    status: 400,
  });
  tt.match(
    await c.connect(req(`${ip(222)}:80`)).catch((e: unknown) => e),
    { reason: "status", status: 400 },
    "unknown IP",
  );
  tt.equal(await metricValue(inboundRefused, { reason: "NOT_LOCAL" }), before + 3);
  // The same session still carries a good stream.
  const s = await c.connect(req(`${SERVER_IP}:${APP_PORT}`));
  s.end("ok");
  let got = "";
  s.on("data", (d: Buffer) => {
    got += d.toString();
  });
  await once(s, "end");
  tt.equal(got, "okEND:2");
});

t.test("a destination outside the mesh passes through untouched", async (tt) => {
  const opened = await metricValue(tcpMetrics.opened, {
    reporter: "source",
    connection_security_policy: "none",
  });
  const s = await captured({ ip: PLAIN_IP, port: PLAIN_PORT });
  s.end("plain");
  const r = await readAll(s);
  tt.equal(r.data, "plainEND:5");
  await outbound.whenIdle();
  tt.equal(
    await metricValue(tcpMetrics.opened, { reporter: "source", connection_security_policy: "none" }),
    opened + 1,
  );
});

t.test("an un-enrolled mesh workload is reached directly, in plain", async (tt) => {
  const s = await captured({ ip: UNENROLLED_IP, port: UNENROLLED_PORT });
  s.end("legacy");
  const r = await readAll(s);
  tt.equal(r.data, "legacyEND:6");
});

t.test("passthrough to a closed port resets the client", async (tt) => {
  const s = await captured({ ip: PLAIN_IP, port: 1 });
  const r = await readAll(s);
  tt.equal(r.error, "ECONNRESET");
});

t.test(
  "a service with a waypoint is tunnelled to the waypoint with the original VIP as authority",
  async (tt) => {
    waypointSeen.length = 0;
    const s = await captured({ ip: VIP_WP, port: 80 });
    s.end("via waypoint");
    const r = await readAll(s);
    tt.equal(r.data, "via waypoint");
    tt.same(waypointSeen[0]?.authority, { ip: VIP_WP, port: 80 });
    tt.equal(waypointSeen[0]?.peerIdentity, workloadIdentity(client));
    // Peer metadata as Istio's ztunnel sends it, naming the source workload.
    tt.equal(
      waypointSeen[0]?.baggage,
      "k8s.cluster.name=Kubernetes,k8s.namespace.name=a,k8s.deployment.name=client,service.name=client,service.version=latest",
    );
    tt.same(parsePeerBaggage(waypointSeen[0]?.baggage), {
      namespace: "a",
      workload: "client",
      app: "client",
      version: "latest",
      cluster: "Kubernetes",
    });
  },
);

t.test("a service without healthy endpoints resets the client and counts", async (tt) => {
  const before = await metricValue(connectFailures, { reason: "no_healthy_endpoint" });
  const { done } = dial(CLIENT_IP, CLIENT_IP, await captureFor({ ip: VIP_EMPTY, port: 80 }));
  const r = await done;
  tt.equal(r.error, "ECONNRESET");
  tt.equal(await metricValue(connectFailures, { reason: "no_healthy_endpoint" }), before + 1);
});

t.test("plaintext inbound: PERMISSIVE lets it through, STRICT refuses it", async (tt) => {
  const port = (plaintextCapture.address() as net.AddressInfo).port;
  const s = await connectFrom(PLAIN_IP, SERVER_IP, port);
  s.end("from outside");
  const r = await readAll(s);
  tt.equal(r.data, "from outsideEND:12");
  await plaintext.whenIdle();

  state.applyAddresses([{ ...server, mtlsMode: "strict" }]);
  tt.teardown(() => state.applyAddresses([server]));
  const before = await metricValue(inboundRefused, { reason: "STRICT_MTLS" });
  const { s: s2, done } = dial(PLAIN_IP, SERVER_IP, port);
  s2.write("again");
  const r2 = await done;
  tt.equal(r2.error, "ECONNRESET");
  tt.equal(r2.data, "");
  tt.equal(await metricValue(inboundRefused, { reason: "STRICT_MTLS" }), before + 1);
});

t.test(
  "plaintext inbound: Istio's converted STRICT policy (DENY notPrincipals presence) refuses it",
  async (tt) => {
    state.applyPolicies([
      policy({
        name: "istio_converted_static_strict",
        namespace: "b",
        action: "deny",
        rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: true }] }] }] }],
      }),
    ]);
    tt.teardown(() => state.applyPolicies([], ["b/istio_converted_static_strict"]));
    const port = (plaintextCapture.address() as net.AddressInfo).port;
    const r = await dial(PLAIN_IP, SERVER_IP, port).done;
    tt.equal(r.error, "ECONNRESET");
    // ...while mTLS traffic from the mesh is still allowed.
    const m = await captured({ ip: VIP, port: 80 });
    m.end("mesh");
    tt.equal((await readAll(m)).data, "meshEND:4");
  },
);

// HBONE server on loopback: real TLS 1.3 with client certificates, real
// HTTP/2. Bad input of every kind is refused and counted while a good client
// keeps being served.
import { once } from "node:events";
import http2, { type ServerHttp2Stream } from "node:http2";
import net from "node:net";
import tls from "node:tls";
import t, { type Test } from "tap";
import { HboneClient, HboneConnectError } from "../../core/hbone/client.js";
import { HboneServer, type HboneStreamInfo, protocolErrors } from "../../core/hbone/server.js";
import type { CertBundle, CertSource } from "../../core/hbone/types.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, metricValue, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const SERVER_IP = ip(2);
const CLIENT = spiffe("a", "client");
const SERVER = spiffe("b", "server");

const pki = await makePki();
const certs = pki.source();
const seen: HboneStreamInfo[] = [];

// Echo handler: 200, then everything back.
function echo(stream: ServerHttp2Stream, info: HboneStreamInfo): void {
  seen.push(info);
  stream.respond({ ":status": 200 });
  stream.pipe(stream);
}

const server = new HboneServer({
  handler: echo,
  sessionIdleTimeoutMs: 300,
  pingTimeoutMs: 300,
  handshakeTimeoutMs: 2000,
});
const listener = await server.listen(
  { host: SERVER_IP, port: 0 },
  { cert: () => certs.get(SERVER), name: "test" },
);
const PORT = listener.address().port;
t.teardown(() => server.close());

function client(source: CertSource = certs): HboneClient {
  const c = new HboneClient({ certs: source, connectTimeoutMs: 3000 });
  t.teardown(() => c.destroy());
  return c;
}

async function roundTrip(c: HboneClient, payload = "ping", dstIdentity = SERVER): Promise<string> {
  const s = await c.connect({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity,
    dstIp: SERVER_IP,
    dstPort: PORT,
    authority: "10.0.0.1:80",
  });
  s.end(payload);
  let got = "";
  s.on("data", (d: Buffer) => {
    got += d.toString();
  });
  await once(s, "end");
  return got;
}

async function goodClientWorks(tt: Test): Promise<void> {
  tt.equal(await roundTrip(client()), "ping", "a good client is still served");
}

/** TLS with a valid mesh client cert, then raw bytes; resolves when the server closes. */
async function tlsThenBytes(bytes: Buffer): Promise<void> {
  const a = await certs.get(CLIENT);
  const s = tls.connect({
    host: SERVER_IP,
    port: PORT,
    key: a.keyPem,
    cert: a.certChainPem.join("\n"),
    ca: a.rootsPem,
    ALPNProtocols: ["h2"],
    checkServerIdentity: () => undefined,
  });
  s.on("error", () => {});
  await once(s, "secureConnect");
  s.write(bytes);
  s.resume();
  await once(s, "close");
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

t.test("CONNECT round trip carries the peer identity, address and authority", async (tt) => {
  seen.length = 0;
  tt.equal(await roundTrip(client(), "hello"), "hello");
  tt.equal(seen[0]?.peerIdentity, CLIENT);
  tt.same(seen[0]?.authority, { ip: "10.0.0.1", port: 80 });
  tt.match(seen[0]?.peerAddress, /^127\./);
  tt.equal(seen[0]?.listener.name, "test");
});

t.test("non-TLS bytes are refused and counted; the server keeps serving", async (tt) => {
  const before = await metricValue(protocolErrors, { reason: "tls_handshake" });
  const s = net.connect(PORT, SERVER_IP);
  s.on("error", () => {});
  s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  s.resume();
  await once(s, "close");
  tt.equal(await metricValue(protocolErrors, { reason: "tls_handshake" }), before + 1);
  await goodClientWorks(tt);
});

t.test("a garbled HTTP/2 preface is refused and counted", async (tt) => {
  const before = await metricValue(protocolErrors, { reason: "http2_protocol" });
  await tlsThenBytes(Buffer.from("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\nnot http2 at all"));
  tt.equal(await metricValue(protocolErrors, { reason: "http2_protocol" }), before + 1);
  await goodClientWorks(tt);
});

t.test(
  "an oversized frame closes that connection (nghttp2 GOAWAY, then the PING probe) and is counted",
  async (tt) => {
    const before = await metricValue(protocolErrors, { reason: "http2_unresponsive" });
    const n = 100_000; // > the 16 KiB default max frame size
    const big = Buffer.alloc(9 + n);
    big.writeUIntBE(n, 0, 3);
    big.writeUInt32BE(1, 5);
    await tlsThenBytes(Buffer.concat([PREFACE, EMPTY_SETTINGS, big]));
    tt.equal(await metricValue(protocolErrors, { reason: "http2_unresponsive" }), before + 1);
    await goodClientWorks(tt);
  },
);

t.test("TLS without an HTTP/2 preface is closed after the handshake timeout and counted", async (tt) => {
  const s2 = new HboneServer({ handler: echo, handshakeTimeoutMs: 200 });
  tt.teardown(() => s2.close());
  const l2 = await s2.listen({ host: ip(6), port: 0 }, { cert: () => certs.get(SERVER) });
  const before = await metricValue(protocolErrors, { reason: "http2_preface_timeout" });
  const a = await certs.get(CLIENT);
  const s = tls.connect({
    host: ip(6),
    port: l2.address().port,
    key: a.keyPem,
    cert: a.certChainPem.join("\n"),
    ca: a.rootsPem,
    ALPNProtocols: ["h2"],
    checkServerIdentity: () => undefined,
  });
  s.on("error", () => {});
  s.resume();
  await once(s, "close");
  tt.equal(await metricValue(protocolErrors, { reason: "http2_preface_timeout" }), before + 1);
});

t.test("an idle but healthy session is closed gracefully, not counted", async (tt) => {
  const before = await metricValue(protocolErrors);
  const c = client();
  tt.equal(await roundTrip(c), "ping");
  const entry = c.pool.stats();
  tt.equal(entry.sessions, 1);
  const session = c.pool.sessionsFor({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity: SERVER,
    dstIp: SERVER_IP,
    dstPort: PORT,
  })[0]?.session;
  tt.ok(session);
  await once(session as http2.ClientHttp2Session, "close");
  tt.equal(await metricValue(protocolErrors), before, "no protocol error for an idle close");
});

t.test("a client certificate from another root is refused at the handshake", async (tt) => {
  const other = await makePki("another root");
  const foreign = await other.issue(CLIENT);
  const meshRoots = (await certs.get(CLIENT)).rootsPem;
  // Trusts the mesh root (so the server cert verifies) but presents a foreign leaf.
  const source: CertSource = { get: async () => ({ ...foreign, rootsPem: meshRoots }) };
  const before = await metricValue(protocolErrors, { reason: "peer_cert" });
  await tt.rejects(roundTrip(client(source)), HboneConnectError);
  tt.equal(await metricValue(protocolErrors, { reason: "peer_cert" }), before + 1);
  await goodClientWorks(tt);
});

t.test("an expired client certificate is refused", async (tt) => {
  const expired: CertBundle = await pki.issue(CLIENT, {
    notBefore: new Date(Date.now() - 7200_000),
    notAfter: new Date(Date.now() - 3600_000),
  });
  const before = await metricValue(protocolErrors, { reason: "peer_cert" });
  await tt.rejects(roundTrip(client({ get: async () => expired })), HboneConnectError);
  tt.equal(await metricValue(protocolErrors, { reason: "peer_cert" }), before + 1);
});

t.test("the client refuses a server whose SPIFFE id is not the expected one", async (tt) => {
  await tt.rejects(
    roundTrip(client(), "x", spiffe("b", "someone-else")),
    new HboneConnectError("identity", ""),
    "wrong identity",
  );
  const err = await roundTrip(client(), "x", spiffe("b", "someone-else")).catch((e: HboneConnectError) => e);
  tt.equal((err as HboneConnectError).reason, "identity");
});

t.test("methods other than CONNECT get 405, bad authorities 400; both counted", async (tt) => {
  const a = await certs.get(CLIENT);
  const session = http2.connect(`https://${SERVER_IP}:${PORT}`, {
    key: a.keyPem,
    cert: a.certChainPem.join("\n"),
    ca: a.rootsPem,
    checkServerIdentity: () => undefined,
  });
  t.teardown(() => session.destroy());
  const status = async (headers: http2.OutgoingHttpHeaders): Promise<number> => {
    const req = session.request(headers, { endStream: headers[":method"] !== "CONNECT" });
    const [h] = (await once(req, "response")) as [http2.IncomingHttpHeaders];
    req.resume();
    return Number(h[":status"]);
  };
  const m0 = await metricValue(protocolErrors, { reason: "method" });
  const a0 = await metricValue(protocolErrors, { reason: "authority" });
  tt.equal(await status({ ":method": "GET", ":path": "/" }), 405);
  tt.equal(await status({ ":method": "CONNECT", ":authority": "svc.example.com:80" }), 400);
  tt.equal(await status({ ":method": "CONNECT", ":authority": "10.0.0.1:99999" }), 400);
  tt.equal(
    await status({ ":method": "CONNECT", ":authority": "10.0.0.1:80" }),
    200,
    "the same session still serves a good CONNECT",
  );
  tt.equal(await metricValue(protocolErrors, { reason: "method" }), m0 + 1);
  tt.equal(await metricValue(protocolErrors, { reason: "authority" }), a0 + 2);
});

t.test("a listener on an existing net.Server and one fed with accept() both serve", async (tt) => {
  const s2 = new HboneServer({ handler: echo });
  tt.teardown(() => s2.close());
  const raw = net.createServer({ pauseOnConnect: true });
  raw.listen(0, ip(3));
  await once(raw, "listening");
  await s2.listen(raw, { cert: () => certs.get(SERVER) });
  const c = client();
  const port = (raw.address() as net.AddressInfo).port;
  const s = await c.connect({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity: SERVER,
    dstIp: ip(3),
    dstPort: port,
    authority: "10.0.0.1:80",
  });
  s.end("via net.Server");
  let got = "";
  s.on("data", (d: Buffer) => {
    got += d.toString();
  });
  await once(s, "end");
  tt.equal(got, "via net.Server");

  // The capture layer accepts itself and hands sockets over.
  const fed = s2.attach({ cert: () => certs.get(SERVER), podUid: "pod-x" });
  const outer = net.createServer((sock) => fed.accept(sock));
  outer.listen(0, ip(4));
  await once(outer, "listening");
  tt.teardown(() => outer.close());
  const p2 = (outer.address() as net.AddressInfo).port;
  const s3 = await c.connect({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity: SERVER,
    dstIp: ip(4),
    dstPort: p2,
    authority: "10.0.0.1:80",
  });
  s3.end("fed");
  let got3 = "";
  s3.on("data", (d: Buffer) => {
    got3 += d.toString();
  });
  await once(s3, "end");
  tt.equal(got3, "fed");
});

t.test("drain: stops accepting, open streams finish, then it resolves", async (tt) => {
  const s2 = new HboneServer({ handler: echo });
  const l2 = await s2.listen({ host: ip(5), port: 0 }, { cert: () => certs.get(SERVER) });
  const port = l2.address().port;
  const c = client();
  const stream = await c.connect({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity: SERVER,
    dstIp: ip(5),
    dstPort: port,
    authority: "10.0.0.1:80",
  });
  let drained = false;
  const draining = s2.drain(10_000).then(() => {
    drained = true;
  });
  // New TCP connections are refused once the listener is closed.
  await new Promise<void>((resolve) => {
    const probe = () => {
      const s = net.connect(port, ip(5));
      s.on("error", () => resolve());
      s.on("connect", () => {
        s.destroy();
        setImmediate(probe);
      });
    };
    probe();
  });
  tt.notOk(drained, "drain waits for the open stream");
  stream.write("still");
  const [d] = (await once(stream, "data")) as [Buffer];
  tt.equal(d.toString(), "still", "the open stream keeps working during drain");
  stream.end();
  stream.resume();
  await draining;
  tt.ok(drained);
});

t.test(
  "a listener on an inherited fd (as the capture layer and an upgrade hand over)",
  { skip: process.getuid?.() !== 0 ? "needs root (setns)" : false },
  async (tt) => {
    const { listenInNetns } = await import("../../ztunnel/node-agent/native.js");
    const fd = listenInNetns("/proc/self/ns/net", { host: ip(7), port: 15008, reusePort: true });
    const s2 = new HboneServer({ handler: echo });
    tt.teardown(() => s2.close());
    const l = await s2.listen({ fd }, { cert: () => certs.get(SERVER) });
    tt.equal(l.fd, fd, "the listener reports its fd");
    const c = client();
    const s = await c.connect({
      srcIdentity: CLIENT,
      srcIp: "",
      dstIdentity: SERVER,
      dstIp: ip(7),
      dstPort: 15008,
      authority: "10.0.0.1:80",
    });
    s.end("via fd");
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString();
    });
    await once(s, "end");
    tt.equal(got, "via fd");
  },
);

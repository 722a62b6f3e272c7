// HBONE client pooling on loopback: one HTTP/2 session per (source identity,
// source IP, destination identity, destination IP) until the stream limit,
// another beyond it; idle sessions reaped; connect timeout; non-200 answers.
import { once } from "node:events";
import type { ClientHttp2Stream, ServerHttp2Stream } from "node:http2";
import net from "node:net";
import t from "tap";
import { HboneClient, type HboneConnectRequest } from "../../core/hbone/client.js";
import { HboneServer, type HboneStreamInfo } from "../../core/hbone/server.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const SERVER_IP = ip(2);
const A = spiffe("a", "client");
const A2 = spiffe("a", "other-client");
const SERVER = spiffe("b", "server");

const pki = await makePki();
const certs = pki.source();
const sessionsSeen = new Set<unknown>();

const server = new HboneServer({
  handler: (stream: ServerHttp2Stream, info: HboneStreamInfo) => {
    sessionsSeen.add(stream.session);
    if (info.authority.port === 403) {
      stream.respond({ ":status": 403 }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200 });
    stream.pipe(stream);
  },
});
const listener = await server.listen({ host: SERVER_IP, port: 0 }, { cert: () => certs.get(SERVER) });
const PORT = listener.address().port;
t.teardown(() => server.close());

function client(opts: Partial<ConstructorParameters<typeof HboneClient>[0]> = {}): HboneClient {
  const c = new HboneClient({ certs, bindSourceIp: true, ...opts });
  t.teardown(() => c.destroy());
  return c;
}

function req(over: Partial<HboneConnectRequest> = {}): HboneConnectRequest {
  return {
    srcIdentity: A,
    srcIp: ip(10),
    dstIdentity: SERVER,
    dstIp: SERVER_IP,
    dstPort: PORT,
    authority: "10.0.0.1:80",
    ...over,
  };
}

const key = (r: HboneConnectRequest) => ({ ...r, dstPort: r.dstPort ?? 15008 });

async function echoOnce(s: ClientHttp2Stream, payload: string): Promise<string> {
  s.write(payload);
  const [d] = (await once(s, "data")) as [Buffer];
  return d.toString();
}

t.test("two connections with the same key share one session", async (tt) => {
  sessionsSeen.clear();
  const c = client();
  const [s1, s2] = await Promise.all([c.connect(req()), c.connect(req())]);
  tt.equal(await echoOnce(s1, "one"), "one");
  tt.equal(await echoOnce(s2, "two"), "two");
  tt.equal(c.pool.stats().sessions, 1, "one client session");
  tt.equal(sessionsSeen.size, 1, "one server session");
  tt.equal(c.pool.stats().streams, 2);
  s1.end();
  s2.end();
  s1.resume();
  s2.resume();
  await Promise.all([once(s1, "close"), once(s2, "close")]);
  tt.equal(c.pool.stats().streams, 0, "slots released on close");
  const s3 = await c.connect(req());
  tt.equal(c.pool.stats().sessions, 1, "a later connection reuses the idle session");
  s3.close();
});

t.test("the stream limit opens another session", async (tt) => {
  sessionsSeen.clear();
  const c = client({ maxStreamsPerSession: 2 });
  const streams = await Promise.all([c.connect(req()), c.connect(req()), c.connect(req())]);
  tt.equal(c.pool.stats().sessions, 2);
  tt.equal(sessionsSeen.size, 2);
  const ids = c.pool.sessionsFor(key(req())).map((e) => e.active);
  tt.same(ids.sort(), [1, 2]);
  for (const s of streams) s.close();
});

t.test("a different source identity or source IP gets its own session", async (tt) => {
  sessionsSeen.clear();
  const c = client();
  const s1 = await c.connect(req());
  const s2 = await c.connect(req({ srcIdentity: A2 }));
  const s3 = await c.connect(req({ srcIp: ip(11) }));
  tt.equal(c.pool.stats().sessions, 3);
  tt.equal(sessionsSeen.size, 3);
  const peers = [...sessionsSeen].map((s) => (s as { socket: net.Socket }).socket.remoteAddress).sort();
  tt.same(peers, [ip(10), ip(10), ip(11)].sort(), "the tunnel leaves from the source IP");
  for (const s of [s1, s2, s3]) s.close();
});

t.test("idle sessions are reaped", async (tt) => {
  const c = client({ idleTimeoutMs: 30 });
  const s = await c.connect(req());
  const entry = c.pool.sessionsFor(key(req()))[0];
  tt.ok(entry?.session);
  s.end();
  s.resume();
  await once(entry?.session as NonNullable<typeof entry>["session"] & object, "close");
  tt.equal(c.pool.stats().sessions, 0);
});

t.test("a non-200 answer rejects with its status and frees the slot", async (tt) => {
  const c = client();
  const err = await c.connect(req({ authority: "10.0.0.1:403" })).catch((e: unknown) => e);
  tt.match(err, { reason: "status", status: 403 });
  tt.equal(c.pool.stats().streams, 0);
});

t.test("connect timeout when the peer never completes TLS", async (tt) => {
  const sink = net.createServer(() => {});
  sink.listen(0, ip(3));
  await once(sink, "listening");
  tt.teardown(() => {
    sink.close();
  });
  const open: net.Socket[] = [];
  sink.on("connection", (s) => open.push(s));
  tt.teardown(() => {
    for (const s of open) s.destroy();
  });
  const c = client({ connectTimeoutMs: 100 });
  const started = Date.now();
  const err = await c
    .connect(req({ dstIp: ip(3), dstPort: (sink.address() as net.AddressInfo).port }))
    .catch((e: unknown) => e);
  tt.match(err, { reason: "timeout" });
  tt.ok(Date.now() - started < 2000);
  tt.equal(c.pool.stats().streams, 0);
});

t.test("connection refused rejects and leaves no session behind", async (tt) => {
  const c = client();
  const err = await c.connect(req({ dstIp: ip(4), dstPort: 1 })).catch((e: unknown) => e);
  tt.match(err, { reason: "tls" });
  tt.equal(c.pool.stats().sessions, 0);
});

t.test(
  "after a GOAWAY (the peer drains for an upgrade) new streams open a new session; the old stream finishes",
  async (tt) => {
    const host = ip(5);
    const handler = (stream: ServerHttp2Stream) => {
      stream.respond({ ":status": 200 });
      stream.pipe(stream);
    };
    const old = new HboneServer({ handler });
    const l1 = await old.listen({ host, port: 0 }, { cert: () => certs.get(SERVER) });
    const port = l1.address().port;
    const c = client();
    const r = req({ dstIp: host, dstPort: port });
    const longLived = await c.connect(r);
    tt.equal(await echoOnce(longLived, "before"), "before");
    const oldSession = c.pool.sessionsFor(key(r))[0]?.session;
    const goaway = once(oldSession as NonNullable<typeof oldSession>, "goaway");
    const drained = old.drain(30_000);
    await goaway;
    // The successor listens on the same address once the old listener is closed.
    const successor = new HboneServer({ handler });
    tt.teardown(() => successor.close());
    await successor.listen({ host, port }, { cert: () => certs.get(SERVER) });
    const fresh = await c.connect(r);
    tt.equal(await echoOnce(fresh, "after"), "after");
    tt.not(fresh.session, longLived.session, "a new session");
    tt.equal(successor.sessionCount, 1);
    tt.equal(await echoOnce(longLived, "still"), "still", "the old stream is not reset");
    longLived.end();
    longLived.resume();
    await drained;
    tt.equal(old.sessionCount, 0, "the old server finished draining once its last stream ended");
    fresh.close();
  },
);

// Fuzzing the HBONE server over real loopback sockets with real mTLS: random
// bytes, a good TLS handshake followed by garbage, raw HTTP/2 frames whose
// lengths lie (truncated, oversized), and CONNECTs to odd authorities.
// Properties: nothing crashes the process; every connection is closed by the
// server within a bound (no hang, no leaked session); a CONNECT reaches the
// handler exactly when its authority is a strict ip:port; and after every
// batch a good mTLS client (fresh connection) still gets through.
import { once } from "node:events";
import type { ServerHttp2Stream } from "node:http2";
import net, { isIP } from "node:net";
import tls from "node:tls";
import fc from "fast-check";
import t, { type Test } from "tap";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer, type HboneStreamInfo } from "../../core/hbone/server.js";
import { parseAuthority } from "../../core/hbone/types.js";
import { setLevel } from "../../core/telemetry/logger.js";
import { fuzz, within } from "../fuzz/harness.js";
import {
  connectRequest,
  encodeFrame,
  FrameType,
  PREFACE,
  type RawFrame,
  readStream1,
} from "../fuzz/http2-frames.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

setLevel("error");

const ip = loopbackNet();
const SERVER_IP = ip(9);
const CLIENT = spiffe("a", "client");
const SERVER = spiffe("b", "server");
/** A refused connection must be closed by the server within this (handshake 300 ms, idle 200 + PING 100 ms, slack for a loaded CI). */
const CLOSE_BOUND_MS = 4000;

const pki = await makePki();
const certs = pki.source();
const clientCert = await certs.get(CLIENT);
const reached: HboneStreamInfo[] = [];

const server = new HboneServer({
  handler(stream: ServerHttp2Stream, info: HboneStreamInfo) {
    reached.push(info);
    stream.on("error", () => {});
    stream.respond({ ":status": 200 });
    stream.pipe(stream);
  },
  handshakeTimeoutMs: 300,
  sessionIdleTimeoutMs: 200,
  pingTimeoutMs: 100,
});
const raw = net.createServer({ pauseOnConnect: true });
/** Server-side sockets still open: every one must close on its own. */
const open = new Set<net.Socket>();
/** Server-side sockets by the client's port, so that concurrent connections pair up. */
const byPeerPort = new Map<number, net.Socket>();
const waiting = new Map<number, (s: net.Socket) => void>();
raw.on("connection", (s: net.Socket) => {
  open.add(s);
  const port = s.remotePort ?? 0;
  s.once("close", () => {
    open.delete(s);
    byPeerPort.delete(port);
  });
  const w = waiting.get(port);
  if (w) {
    waiting.delete(port);
    w(s);
  } else byPeerPort.set(port, s);
});
await server.listen(raw, { cert: () => certs.get(SERVER), name: "fuzz" });
raw.listen(0, SERVER_IP);
await once(raw, "listening");
const PORT = (raw.address() as net.AddressInfo).port;
t.teardown(async () => {
  await server.close();
  for (const s of open) s.destroy();
  raw.close();
});

/** The server-side socket of a client connection (by the client's local port). */
function serverSideOf(client: net.Socket): Promise<net.Socket> {
  const port = client.localPort ?? 0;
  const s = byPeerPort.get(port);
  if (s) {
    byPeerPort.delete(port);
    return Promise.resolve(s);
  }
  return new Promise((resolve) => waiting.set(port, resolve));
}

async function goodClientGetsThrough(): Promise<void> {
  const c = new HboneClient({ certs, connectTimeoutMs: 3000 });
  try {
    const s = await c.connect({
      srcIdentity: CLIENT,
      srcIp: "",
      dstIdentity: SERVER,
      dstIp: SERVER_IP,
      dstPort: PORT,
      authority: "10.0.0.1:80",
    });
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString();
    });
    s.end("good");
    await once(s, "end");
    if (got !== "good") throw new Error(`good client got ${JSON.stringify(got)}`);
  } finally {
    c.destroy();
  }
}

/** Both ends of one connection closed within the bound. */
async function bothClosed(client: net.Socket, serverSide: net.Socket, what: string): Promise<void> {
  const closed = (s: net.Socket) =>
    s.destroyed ? Promise.resolve() : once(s, "close").then(() => undefined);
  await within(CLOSE_BOUND_MS, `${what}: server-side socket closed`, closed(serverSide));
  await within(CLOSE_BOUND_MS, `${what}: client socket closed`, closed(client));
}

async function sendRaw(bytes: Uint8Array, end: boolean): Promise<void> {
  const s = net.connect(PORT, SERVER_IP);
  s.on("error", () => {});
  s.resume();
  await once(s, "connect");
  const accepted = serverSideOf(s);
  if (end) s.end(bytes);
  else s.write(bytes);
  await bothClosed(s, await within(CLOSE_BOUND_MS, "accepted", accepted), "raw bytes");
}

/** A client TLS connection with the good mesh certificate; resolves once the handshake is done. */
async function goodTls(): Promise<{ s: tls.TLSSocket; accepted: Promise<net.Socket> }> {
  const tcp = net.connect(PORT, SERVER_IP);
  tcp.on("error", () => {});
  await once(tcp, "connect");
  const accepted = within(CLOSE_BOUND_MS, "accepted", serverSideOf(tcp));
  const s = tls.connect({
    socket: tcp,
    key: clientCert.keyPem,
    cert: clientCert.certChainPem.join("\n"),
    ca: clientCert.rootsPem,
    ALPNProtocols: ["h2"],
    checkServerIdentity: () => undefined,
  });
  s.on("error", () => {});
  await within(CLOSE_BOUND_MS, "TLS handshake of a good client", once(s, "secureConnect"));
  return { s, accepted };
}

async function sendAfterTls(bytes: Uint8Array, end: boolean): Promise<void> {
  const { s, accepted } = await goodTls();
  s.resume();
  if (end) s.end(bytes);
  else s.write(bytes);
  await bothClosed(s, await accepted, "TLS then bytes");
}

/** Every server-side socket closes (the good client's included, once it is gone). */
async function allServerSocketsClose(t: Test): Promise<void> {
  await within(
    CLOSE_BOUND_MS,
    `${open.size} server-side sockets closing`,
    Promise.all([...open].map((s) => once(s, "close"))),
  );
  t.equal(open.size, 0, "no server-side socket left open");
}

/** Runs a batch of bad connections at once, then checks a good client still gets through. */
async function batch<T>(inputs: T[], one: (x: T) => Promise<void>): Promise<void> {
  await Promise.all(inputs.map(one));
  await goodClientGetsThrough();
}

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }),
  // A TLS handshake record header, then anything: reaches the TLS parser's deeper states.
  fc
    .tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 600 }))
    .map(([len, rest]) => new Uint8Array([0x16, 0x03, 0x01, len >> 8, len & 0xff, ...rest])),
);

t.test("random bytes instead of TLS: closed within the bound, good clients still served", async (t) => {
  const n = await fuzz(
    { target: "hbone-raw", ci: 6 },
    fc.array(fc.record({ bytes, end: fc.boolean() }), { minLength: 1, maxLength: 6 }),
    (xs) => batch(xs, (x) => sendRaw(x.bytes, x.end)),
  );
  t.ok(n > 0, `${n} batches`);
  await allServerSocketsClose(t);
});

t.test("a valid mTLS handshake followed by garbage: closed within the bound", async (t) => {
  const garbage = fc.oneof(
    fc.uint8Array({ maxLength: 4096 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => new Uint8Array([...PREFACE.subarray(0, 12), ...b])),
    fc.uint8Array({ maxLength: 200 }).map((b) => new Uint8Array([...PREFACE, ...b])),
  );
  const n = await fuzz(
    { target: "hbone-tls-garbage", ci: 8 },
    fc.array(fc.record({ bytes: garbage, end: fc.boolean() }), { minLength: 1, maxLength: 6 }),
    (xs) => batch(xs, (x) => sendAfterTls(x.bytes, x.end)),
  );
  t.ok(n > 0, `${n} batches`);
  await allServerSocketsClose(t);
});

const frame: fc.Arbitrary<RawFrame> = fc.record(
  {
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 255 })),
    flags: fc.oneof(fc.constantFrom(0, 1, 4, 5, 8, 0x20, 0x25), fc.integer({ min: 0, max: 255 })),
    streamId: fc.oneof(
      fc.constantFrom(0, 1, 2, 3, 0x7fffffff, 0x80000001),
      fc.integer({ min: 0, max: 0xffffffff }),
    ),
    payload: fc.oneof(
      { weight: 5, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.integer({ min: 16_385, max: 40_000 }).map((n) => new Uint8Array(n)) },
    ),
    // Truncated (the server waits for bytes that never come) or oversized (beyond SETTINGS_MAX_FRAME_SIZE).
    lengthField: fc.oneof(
      fc.integer({ min: 0, max: 0xffffff }),
      fc.constantFrom(0, 16_384, 16_385, 0xffffff),
    ),
  },
  { requiredKeys: ["type", "flags", "streamId", "payload"] },
);

t.test(
  "HTTP/2 frames with lying lengths, odd types, flags and stream ids: closed within the bound",
  async (t) => {
    const session = fc.record({
      preface: fc.boolean(),
      settings: fc.boolean(),
      frames: fc.array(frame, { minLength: 1, maxLength: 5 }),
      end: fc.boolean(),
    });
    const encode = (x: { preface: boolean; settings: boolean; frames: RawFrame[] }) =>
      Buffer.concat([
        x.preface ? PREFACE : Buffer.alloc(0),
        x.settings
          ? encodeFrame({ type: FrameType.SETTINGS, flags: 0, streamId: 0, payload: new Uint8Array(0) })
          : Buffer.alloc(0),
        ...x.frames.map(encodeFrame),
      ]);
    const n = await fuzz(
      { target: "hbone-frames", ci: 10 },
      fc.array(session, { minLength: 1, maxLength: 6 }),
      (xs) => batch(xs, (x) => sendAfterTls(encode(x), x.end)),
    );
    t.ok(n > 0, `${n} batches`);
    await allServerSocketsClose(t);
  },
);

const ODD_AUTHORITIES = [
  "10.0.0.1",
  "10.0.0.1:",
  ":80",
  "[::1]",
  "::1:80",
  "fd00::1:80",
  "[fd00::1]:0",
  "10.0.0.1:0",
  "10.0.0.1:65536",
  "10.0.0.1:65535",
  "10.0.0.1:99999999999999999999",
  "[::1]:80",
  "[:]:80",
  "[::::]:80",
  "[1.2.3.4.5.6]:80",
  "[::ffff:10.0.0.1]:80",
  "[fe80::1%eth0]:80",
  "[]:80",
  "[",
  "]:80",
  " 10.0.0.1:80",
  "10.0.0.1:80 ",
  "10.0.0.1:+80",
  "10.0.0.1:-1",
  "10.0.0.1:8e1",
  "010.0.0.1:80",
  "10.0.0.1.:80",
  "１０.0.0.1:80",
  "10.0.0.1:８０",
  "ä.example:80",
  "localhost:80",
  "svc.ns.svc.cluster.local:80",
  "10.0.0.1:80\u0000",
  "10.0.0.1:80\r\nx: y",
  "",
  "1".repeat(70_000),
];

const authority = fc.oneof(
  fc.constantFrom(...ODD_AUTHORITIES),
  fc.tuple(fc.ipV4(), fc.integer({ min: -5, max: 70_000 })).map(([i, p]) => `${i}:${p}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 70_000 })).map(([i, p]) => `${i}:${p}`), // IPv6 without brackets
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 70_000 })).map(([i, p]) => `[${i}]:${p}`),
  // Random bytes (not the "binary" string unit: its lazy 1.1M-entry table costs seconds).
  fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString("latin1")),
  // Unicode code points, in the host or in the port.
  fc
    .array(
      fc.integer({ min: 0x80, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff),
      { maxLength: 20 },
    )
    .chain((cps) =>
      fc.constantFrom(`${String.fromCodePoint(...cps)}:80`, `10.0.0.1:${String.fromCodePoint(...cps)}`),
    ),
  fc.string({ minLength: 65, maxLength: 8000 }),
);

/** Sends one CONNECT on a fresh mTLS session; returns what stream 1 got. */
async function connectTo(
  auth: string,
): Promise<ReturnType<typeof readStream1> extends Promise<infer O> ? O : never> {
  const { s, accepted } = await goodTls();
  const outcome = readStream1(s);
  s.write(connectRequest(Buffer.from(auth, "utf8")));
  const got = await within(CLOSE_BOUND_MS, `answer to CONNECT ${JSON.stringify(auth.slice(0, 40))}`, outcome);
  s.destroy();
  await bothClosed(s, await accepted, "CONNECT");
  return got;
}

/** A CONNECT reaches the handler exactly when parseAuthority accepts it, and then with a real IP and port. */
async function checkAuthority(auth: string): Promise<void> {
  reached.length = 0;
  const want = parseAuthority(auth);
  const got = await connectTo(auth);
  if (want) {
    if (got.kind !== "status" || got.status !== 200)
      throw new Error(`${JSON.stringify(auth)} parses but got ${JSON.stringify(got)}`);
    if (reached.length !== 1)
      throw new Error(`${JSON.stringify(auth)}: handler called ${reached.length} times`);
  } else {
    if (got.kind === "status" && got.status === 200)
      throw new Error(`${JSON.stringify(auth.slice(0, 80))} does not parse but got 200`);
    if (reached.length !== 0) throw new Error(`${JSON.stringify(auth.slice(0, 80))} reached the handler`);
  }
  for (const r of reached) {
    if (isIP(r.authority.ip) === 0)
      throw new Error(`handler got a non-IP ${JSON.stringify(r.authority.ip)} from ${JSON.stringify(auth)}`);
    if (!(r.authority.port >= 1 && r.authority.port <= 65535))
      throw new Error(`handler got port ${r.authority.port}`);
  }
}

t.test(
  "CONNECT to odd authorities: the handler sees exactly the strict ip:port ones, valid IP and port",
  async (t) => {
    for (const a of ODD_AUTHORITIES) await checkAuthority(a);
    const n = await fuzz({ target: "hbone-authority", ci: 40 }, authority, checkAuthority);
    t.ok(n > 0, `${n} generated authorities after ${ODD_AUTHORITIES.length} listed ones`);
    await goodClientGetsThrough();
    await allServerSocketsClose(t);
  },
);

// Fuzzing the ztunnel DNS proxy with random and mutated packets, directly
// and over real loopback UDP and TCP, with a real upstream resolver on
// loopback that answers some names and ignores others. Properties: the
// process never crashes; every query is answered (a DNS response with the
// query's id) or dropped, within a bound; and afterwards a good query for a
// mesh Service is still answered from the mesh.
import dgram from "node:dgram";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import t from "tap";
import type { MeshService } from "../../core/model/types.js";
import { DnsProxy } from "../../ztunnel/dns/proxy.js";
import { fuzz, within } from "../fuzz/harness.js";

const FORWARD_TIMEOUT_MS = 100;
const ANSWER_BOUND_MS = 3000;

const svc: MeshService = {
  key: "demo/server.demo.svc.cluster.local",
  name: "server",
  namespace: "demo",
  hostname: "server.demo.svc.cluster.local",
  vips: ["10.96.0.10", "fd00::10"],
  ports: [{ port: 80, targetPort: 8080, appProtocol: "http" }],
};
const headless: MeshService = {
  ...svc,
  key: "demo/db",
  name: "db",
  hostname: "db.demo.svc.cluster.local",
  vips: [],
};
const services = new Map([svc, headless].map((s) => [s.hostname, s]));

// The node's resolver: answers names under example.com, stays silent for the rest (so forwards time out).
const upstream = dgram.createSocket("udp4");
upstream.on("message", (msg, r) => {
  try {
    const q = dnsPacket.decode(msg);
    const name = q.questions?.[0]?.name ?? "";
    if (!name.endsWith("example.com")) return;
    upstream.send(
      dnsPacket.encode({
        type: "response",
        id: q.id,
        questions: q.questions,
        answers: [{ type: "A", name, data: "192.0.2.1" }],
      }),
      r.port,
      r.address,
    );
  } catch {
    // A resolver ignores what it cannot parse.
  }
});
upstream.bind(0, "127.0.0.1");
await once(upstream, "listening");
t.teardown(() => upstream.close());

const proxy = new DnsProxy({
  source: { serviceByHostname: (h) => services.get(h), endpointIps: () => ["10.1.0.5"] },
  upstreams: [`127.0.0.1:${(upstream.address() as AddressInfo).port}`],
  forwardTimeoutMs: FORWARD_TIMEOUT_MS,
});

const udp = dgram.createSocket("udp4");
proxy.serveUdp(udp, "demo");
udp.bind(0, "127.0.0.1");
await once(udp, "listening");
const UDP_PORT = (udp.address() as AddressInfo).port;
t.teardown(() => udp.close());

const tcp = net.createServer();
proxy.serveTcp(tcp, "demo");
tcp.listen(0, "127.0.0.1");
await once(tcp, "listening");
const TCP_PORT = (tcp.address() as AddressInfo).port;
t.teardown(() => tcp.close());

const NAMES = [
  "server",
  "server.demo",
  "server.demo.svc",
  "server.demo.svc.cluster.local",
  "db",
  "x.example.com",
  "nowhere.invalid",
  "",
  ".",
  "a..b",
  "é.example.com",
];
const TYPES = ["A", "AAAA", "SRV", "TXT", "PTR", "ANY", "MX", "CNAME", "NS", "SOA", "OPT"] as const;

const validQuery = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    name: fc.oneof(fc.constantFrom(...NAMES), fc.stringMatching(/^[a-z0-9.-]{0,70}$/)),
    type: fc.constantFrom(...TYPES),
    flags: fc.integer({ min: 0, max: 0xffff }),
    extraQuestions: fc.integer({ min: 0, max: 2 }),
  })
  .map((q) => {
    try {
      return dnsPacket.encode({
        type: "query",
        id: q.id,
        flags: q.flags & ~0x8000,
        questions: Array.from({ length: 1 + q.extraQuestions }, () => ({ type: q.type, name: q.name })),
      } as dnsPacket.Packet);
    } catch {
      return Buffer.from([q.id >> 8, q.id & 0xff]);
    }
  });

/** A valid query with some bytes overwritten, cut short or extended. */
const mutatedQuery = fc
  .tuple(
    validQuery,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.integer({ min: -12, max: 12 }),
  )
  .map(([q, edits, delta]) => {
    const b = Buffer.from(q);
    for (const [at, v] of edits) if (b.length) b[at % b.length] = v;
    return delta < 0
      ? b.subarray(0, Math.max(0, b.length + delta))
      : Buffer.concat([b, Buffer.alloc(delta, 0xc0)]);
  });

const packet = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
  validQuery,
  mutatedQuery,
  // Compression pointers that point at themselves or loop.
  fc
    .integer({ min: 0, max: 0xffff })
    .map((id) => Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])),
);

/** Whether dns-packet can decode a query and re-encode it into something decodable (labels holding dots do not). */
function questionsRoundTrip(query: Buffer): boolean {
  try {
    dnsPacket.decode(dnsPacket.encode(dnsPacket.decode(query)));
    return true;
  } catch {
    return false;
  }
}

/**
 * A response to `query`: a DNS response header carrying the query's id (what a
 * client matches on), decodable as a whole unless the query's own question
 * section cannot be re-encoded (then the echoed questions come out mangled:
 * the client drops it, as it would drop no answer).
 */
function checkResponse(query: Buffer, res: Buffer): void {
  if (res.length < 12) throw new Error(`answer of ${res.length} bytes`);
  if ((res[2]! & 0x80) === 0) throw new Error("answer is not a response (QR bit clear)");
  if (query.length >= 2 && res.readUInt16BE(0) !== query.readUInt16BE(0)) {
    throw new Error(`answer id ${res.readUInt16BE(0)} for query id ${query.readUInt16BE(0)}`);
  }
  try {
    dnsPacket.decode(res);
  } catch (err) {
    if (questionsRoundTrip(query))
      throw new Error(`undecodable answer to a well-formed query: ${(err as Error).message}`);
  }
}

async function goodQueryAnswered(): Promise<void> {
  const res = await within(
    ANSWER_BOUND_MS,
    "a good query",
    proxy.handle(
      dnsPacket.encode({ type: "query", id: 42, questions: [{ type: "A", name: "server" }] }),
      "demo",
    ),
  );
  const p = dnsPacket.decode(res);
  const data = (p.answers ?? []).map((a) => (a as { data: string }).data);
  if (JSON.stringify(data) !== JSON.stringify(["10.96.0.10"]))
    throw new Error(`good query got ${JSON.stringify(data)}`);
}

t.test(
  "handle(): every packet is answered with its id, or rejected (dropped), within the bound",
  async (t) => {
    const n = await fuzz({ target: "dns-handle", ci: 100 }, packet, async (q) => {
      let res: Buffer | undefined;
      try {
        res = await within(ANSWER_BOUND_MS, "handle", proxy.handle(q, "demo"));
      } catch (err) {
        if ((err as Error).message.includes("not done within")) throw err;
        return; // a rejection is a drop: serveUdp sends nothing, serveTcp closes the connection
      }
      checkResponse(q, res);
    });
    t.ok(n > 0, `${n} packets`);
    await goodQueryAnswered();
  },
);

t.test("over UDP: batches of packets, then a good query still answered from the mesh", async (t) => {
  const client = dgram.createSocket("udp4");
  client.bind(0, "127.0.0.1");
  await once(client, "listening");
  t.teardown(() => client.close());
  const n = await fuzz(
    { target: "dns-udp", ci: 30 },
    fc.array(packet, { minLength: 1, maxLength: 10 }),
    async (batch) => {
      for (const q of batch) if (q.length > 0) client.send(q, UDP_PORT, "127.0.0.1");
      // A marker query sent last: once its answer is back the proxy has read the batch and is still serving.
      const marker = dnsPacket.encode({
        type: "query",
        id: 0xbeef,
        questions: [{ type: "A", name: "server.demo" }],
      });
      client.send(marker, UDP_PORT, "127.0.0.1");
      await within(
        ANSWER_BOUND_MS,
        "the marker's answer",
        new Promise<void>((resolve) => {
          const on = (msg: Buffer) => {
            try {
              if (dnsPacket.decode(msg).id !== 0xbeef) return;
            } catch {
              return;
            }
            client.off("message", on);
            resolve();
          };
          client.on("message", on);
        }),
      );
    },
  );
  t.ok(n > 0, `${n} batches`);
});

t.test(
  "over TCP: random length-prefixed streams; the connection is answered or closed, never crashes the proxy",
  async (t) => {
    const stream = fc.array(
      fc.oneof(
        packet.map((p) => Buffer.concat([Buffer.from([p.length >> 8, p.length & 0xff]), p])),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), // raw, length prefix and all random
      ),
      { minLength: 1, maxLength: 5 },
    );
    const n = await fuzz({ target: "dns-tcp", ci: 40 }, stream, async (chunks) => {
      const s = net.connect(TCP_PORT, "127.0.0.1");
      s.on("error", () => {});
      s.resume();
      await once(s, "connect");
      for (const c of chunks) s.write(c);
      s.end();
      // The proxy answers what it could frame and then closes when we did.
      await within(ANSWER_BOUND_MS, "TCP connection closed", once(s, "close"));
    });
    t.ok(n > 0, `${n} streams`);
    await goodQueryAnswered();
  },
);

t.test("a pod's UDP socket closed while its query is being forwarded does not crash the proxy", async (t) => {
  const sock = dgram.createSocket("udp4");
  proxy.serveUdp(sock, "demo");
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  const client = dgram.createSocket("udp4");
  t.teardown(() => client.close());
  // The upstream ignores this name: the forward waits for its timeout.
  const q = dnsPacket.encode({ type: "query", id: 7, questions: [{ type: "A", name: "silent.invalid" }] });
  const received = once(sock, "message");
  client.send(q, (sock.address() as AddressInfo).port, "127.0.0.1");
  await received;
  sock.close();
  // Same query directly: it settles after the same timeout, so the socket's answer was attempted by now.
  const res = await proxy.handle(q, "demo");
  t.equal(res.readUInt16BE(2) & 0xf, 2, "the forward timed out (SERVFAIL)");
  await new Promise<void>((resolve) => setImmediate(resolve));
  await goodQueryAnswered();
});

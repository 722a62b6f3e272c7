// Early data: a client may write tunnel data as soon as its CONNECT is sent
// (onStream), before the peer's 200. The server sees it before answering,
// which is what saves ztunnel's outbound a round trip per new connection.
import { once } from "node:events";
import type { ServerHttp2Stream } from "node:http2";
import t from "tap";
import { HboneClient, HboneConnectError } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const SERVER_IP = ip(3);
const CLIENT = spiffe("a", "client");
const SERVER = spiffe("b", "server");
const pki = await makePki();
const certs = pki.source();

// Answers only once the first tunnel byte arrived: a client that waited for
// the response before writing would hang here (and time out).
function answerAfterFirstChunk(stream: ServerHttp2Stream): void {
  stream.once("data", (first: Buffer) => {
    const text = first.toString();
    if (text.startsWith("deny")) {
      stream.respond({ ":status": 403 }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200 });
    stream.write(`got ${text};`);
    stream.pipe(stream);
  });
}

const server = new HboneServer({ handler: answerAfterFirstChunk });
const listener = await server.listen(
  { host: SERVER_IP, port: 0 },
  { cert: () => certs.get(SERVER), name: "early" },
);
const PORT = listener.address().port;
t.teardown(() => server.close());
const c = new HboneClient({ certs, connectTimeoutMs: 3000 });
t.teardown(() => c.destroy());

const request = (early: string) => ({
  srcIdentity: CLIENT,
  srcIp: "",
  dstIdentity: SERVER,
  dstIp: SERVER_IP,
  dstPort: PORT,
  authority: "10.0.0.1:80",
  onStream: (s: { write(d: string): boolean }) => {
    s.write(early);
  },
});

t.test("data written in onStream reaches the server before its 200", async (tt) => {
  const s = await c.connect(request("hello"));
  s.end("more");
  let got = "";
  s.on("data", (d: Buffer) => {
    got += d.toString();
  });
  await once(s, "end");
  tt.equal(got, "got hello;more");
});

t.test("a refusal after early data still rejects with the status", async (tt) => {
  const err = await c.connect(request("deny me")).catch((e: unknown) => e);
  tt.type(err, HboneConnectError);
  tt.equal((err as HboneConnectError).status, 403);
  tt.equal(c.pool.stats().streams, 0, "the slot was released");
});

// A draining peer (a ztunnel being upgraded) refuses streams it will not
// process (GOAWAY, REFUSED_STREAM); the HBONE client retries them on a fresh
// session. What the application wrote before the first CONNECT was answered
// went out as early data on the refused stream: the retry must carry it
// again, or the destination never sees the request and the client hangs.
// (That was the "1-2 requests hang at the handover" of the upgrade test.)
import { once } from "node:events";
import http2, { type ServerHttp2Stream } from "node:http2";
import net from "node:net";
import t from "tap";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import { OutboundProxy } from "../../ztunnel/proxy/outbound.js";
import { MeshState, workloadIdentity } from "../../ztunnel/state/mesh-state.js";
import { makePki } from "./fixtures-pki.js";
import { connectFrom, loopbackNet, readAll, workload } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const CLIENT_IP = ip(10);
const SERVER_IP = ip(20);
const APP_PORT = 8080;

const pki = await makePki();
const certs = pki.source();
const client = workload({ name: "client", namespace: "a", ip: CLIENT_IP, node: "node-1" });
const server = workload({ name: "server", namespace: "b", ip: SERVER_IP, node: "node-2" });
const state = new MeshState();
state.applyAddresses([client, server]);

// The peer: refuses the first `refuse` streams once their early data arrived
// (as a draining ztunnel does with a stream above its GOAWAY's last id), then
// echoes what each stream carries.
let refuse = 0;
const seen: string[] = [];
const peer = new HboneServer({
  handler: (stream: ServerHttp2Stream) => {
    stream.once("data", (first: Buffer) => {
      seen.push(first.toString());
      if (refuse > 0) {
        refuse--;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond({ ":status": 200 });
      stream.write(`echo:${first}`);
      stream.pipe(stream);
    });
  },
});
await peer.listen(
  { host: SERVER_IP, port: 15008 },
  { cert: () => certs.get(workloadIdentity(server)), podUid: server.uid, name: "server" },
);
t.teardown(() => peer.close());

const hbone = new HboneClient({ certs, bindSourceIp: true, connectTimeoutMs: 3000 });
const outbound = new OutboundProxy({ state, hbone });
t.teardown(() => hbone.destroy());

const capture = net.createServer({ allowHalfOpen: true }, (s) =>
  outbound.handleOutbound(s, { origDst: { ip: SERVER_IP, port: APP_PORT }, source: client }),
);
capture.listen(0, CLIENT_IP);
await once(capture, "listening");
t.teardown(() => capture.close());
const capturePort = (capture.address() as net.AddressInfo).port;

async function request(msg: string): Promise<string> {
  const s = await connectFrom(CLIENT_IP, CLIENT_IP, capturePort);
  s.write(msg);
  let got = "";
  const want = `echo:${msg}`;
  const timer = setTimeout(() => s.destroy(), 4000);
  for await (const d of s) {
    got += (d as Buffer).toString();
    if (got.length >= want.length) break;
  }
  clearTimeout(timer);
  s.destroy();
  return got;
}

t.test("a refused stream's early data is sent again on the retry", async (t) => {
  seen.length = 0;
  refuse = 1;
  t.equal(await request("hello"), "echo:hello", "the request reached the application after the retry");
  t.same(seen, ["hello", "hello"], "the refused stream and its retry both carried the bytes");
});

t.test("two refusals in a row: the second retry carries them too", async (t) => {
  seen.length = 0;
  refuse = 2;
  t.equal(await request("again"), "echo:again");
  t.same(seen, ["again", "again", "again"]);
});

t.test("data the application writes after the retry follows the replayed bytes in order", async (t) => {
  seen.length = 0;
  refuse = 1;
  const s = await connectFrom(CLIENT_IP, CLIENT_IP, capturePort);
  s.write("one;");
  // The second write lands while the retry is in flight or after it: order must hold either way.
  setImmediate(() => s.end("two;"));
  const r = await readAll(s);
  t.equal(r.data, "echo:one;two;", "every byte once, in order, after the retry");
  t.equal(seen[0], seen[1], "the retry began with the same bytes the refused stream got");
});

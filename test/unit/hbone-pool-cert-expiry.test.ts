// A pooled HBONE session is retired at its certificates' expiry even when
// the event loop is too busy for the session's close timer to have run: the
// pool itself checks the session's validity when it hands out a stream
// slot. Here the server's certificate lives ~1-2 s; the test blocks the
// event loop across its notAfter and asks for a connection right away (no
// timer can run in between): it must get a new session, handshaken with the
// server's current certificate, while the stream open on the old session
// keeps echoing. (Without the pool's check the old session got the slot and
// the stream was only saved by the client's retry once the timer closed it.)
import { once } from "node:events";
import type { ClientHttp2Stream, ServerHttp2Stream } from "node:http2";
import t from "tap";
import { HboneClient, type HboneConnectRequest } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import type { CertBundle, CertSource } from "../../core/hbone/types.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const SERVER_IP = ip(3);
const A = spiffe("a", "client");
const SERVER = spiffe("b", "server");
const pki = await makePki();

async function echoOnce(s: ClientHttp2Stream, payload: string): Promise<string> {
  s.write(payload);
  const [d] = (await once(s, "data")) as [Buffer];
  return d.toString();
}

t.test("the pool hands out no slot on a session past its peer's notAfter, timers or not", async (t) => {
  const serverCerts: CertBundle[] = [];
  const serverCert = async () => {
    const have = serverCerts.at(-1);
    if (have && have.notAfter.getTime() > Date.now() + 100) return have;
    // X.509 keeps whole seconds: a whole-second notAfter, the first one 1-2 s away.
    const end =
      serverCerts.length === 0 ? Math.floor((Date.now() + 2000) / 1000) * 1000 : Date.now() + 3600_000;
    const b = await pki.issue(SERVER, { notAfter: new Date(end) });
    serverCerts.push(b);
    return b;
  };
  const sessions = new Set<unknown>();
  const server = new HboneServer({
    handler: (stream: ServerHttp2Stream) => {
      sessions.add(stream.session);
      stream.respond({ ":status": 200 });
      stream.pipe(stream);
    },
  });
  const listener = await server.listen({ host: SERVER_IP, port: 0 }, { cert: serverCert });
  t.teardown(() => server.close());
  const clientBundle = await pki.issue(A);
  const certs: CertSource = { get: async () => clientBundle };
  const client = new HboneClient({ certs, bindSourceIp: true });
  t.teardown(() => client.destroy());
  const req: HboneConnectRequest = {
    srcIdentity: A,
    srcIp: ip(11),
    dstIdentity: SERVER,
    dstIp: SERVER_IP,
    dstPort: listener.address().port,
    authority: "10.0.0.1:80",
  };
  const first = await client.connect(req);
  t.equal(await echoOnce(first, "one"), "one");
  t.equal(sessions.size, 1);

  const validTo = serverCerts[0]!.notAfter.getTime();
  // Wait (a timer) until just before it, then block the loop across it.
  await new Promise((r) => setTimeout(r, Math.max(0, validTo - Date.now() - 150)));
  while (Date.now() < validTo + 30) {
    // busy: the session's own expiry timer cannot run
  }
  // The pool's decision, before any timer or I/O could run.
  const key = {
    srcIdentity: A,
    srcIp: req.srcIp,
    dstIdentity: SERVER,
    dstIp: SERVER_IP,
    dstPort: req.dstPort!,
  };
  const old = client.pool.sessionsFor(key)[0]!;
  const lease = client.pool.acquire(key);
  t.not(lease.entry.id, old.id, "the slot is on a new session, not on the expired one");
  client.pool.release(lease);
  const s3 = await client.connect(req);
  t.equal(await echoOnce(s3, "three"), "three");
  t.equal(sessions.size, 2, "a new session (a new handshake), not the one whose peer certificate expired");
  t.ok(serverCerts.length >= 2, "the server presented a new certificate to it");
  t.equal(await echoOnce(first, "still"), "still", "the stream open across the expiry keeps working");
  first.close();
  s3.close();
});

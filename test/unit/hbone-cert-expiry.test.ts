// A pooled HBONE session carries no new stream once a certificate it was
// authenticated with has expired: the stream open on it keeps working, the
// next connection gets a new session (a new handshake with the current,
// valid certificate). Both ends checked: the client's own and the peer's.
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

/** Issues certificates with a chosen lifetime per identity; each get() after expiry issues a new one. */
function shortLived(lifetimeMs: Record<string, number>): CertSource {
  const current = new Map<string, CertBundle>();
  return {
    async get(id: string) {
      const have = current.get(id);
      if (have && have.notAfter.getTime() > Date.now() + 100) return have;
      const b = await pki.issue(id, { notAfter: new Date(Date.now() + (lifetimeMs[id] ?? 3600_000)) });
      current.set(id, b);
      return b;
    },
  } as CertSource;
}

async function echoOnce(s: ClientHttp2Stream, payload: string): Promise<string> {
  s.write(payload);
  const [d] = (await once(s, "data")) as [Buffer];
  return d.toString();
}

for (const [side, lifetimes] of [
  ["the client's", { [A]: 1500 }],
  ["the server's", { [SERVER]: 1500 }],
] as const) {
  t.test(`${side} certificate expires: the session takes no new stream, open ones go on`, async (t) => {
    const certs = shortLived(lifetimes);
    const sessions = new Set<unknown>();
    const server = new HboneServer({
      handler: (stream: ServerHttp2Stream) => {
        sessions.add(stream.session);
        stream.respond({ ":status": 200 });
        stream.pipe(stream);
      },
    });
    const listener = await server.listen({ host: SERVER_IP, port: 0 }, { cert: () => certs.get(SERVER) });
    t.teardown(() => server.close());
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
    const second = await client.connect(req);
    t.equal(sessions.size, 1, "before the expiry, connections share the session");
    second.close();

    // Past the certificate's end (the session's expiry timer fires at notAfter).
    await new Promise((r) => setTimeout(r, 1700));
    const third = await client.connect(req);
    t.equal(await echoOnce(third, "three"), "three");
    t.equal(sessions.size, 2, "after the expiry a new connection gets a new session (new handshake)");
    t.equal(await echoOnce(first, "still"), "still", "the stream open across the expiry keeps working");
    first.close();
    third.close();
  });
}

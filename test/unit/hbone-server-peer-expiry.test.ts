// The HBONE server's side of certificate expiry: a session authenticated by
// a client certificate takes no new CONNECT stream once that certificate has
// expired, even from a client that does not retire the session itself (the
// raw HTTP/2 client here, not HboneClient). The server sends GOAWAY at the
// certificate's notAfter; the stream open across it keeps echoing; a new
// stream on that session never reaches the handler; a new session with a
// current certificate is served.
import { once } from "node:events";
import http2, { type ClientHttp2Session, type ServerHttp2Stream } from "node:http2";
import net from "node:net";
import tls from "node:tls";
import t from "tap";
import { HboneServer } from "../../core/hbone/server.js";
import type { CertBundle } from "../../core/hbone/types.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

const ip = loopbackNet();
const SERVER_IP = ip(3);
const CLIENT = spiffe("a", "client");
const SERVER = spiffe("b", "server");
const pki = await makePki();

async function session(port: number, bundle: CertBundle): Promise<ClientHttp2Session> {
  const socket = tls.connect({
    socket: net.connect({ host: SERVER_IP, port, localAddress: ip(11) }),
    key: bundle.keyPem,
    cert: bundle.certChainPem.join("\n"),
    ca: bundle.rootsPem,
    minVersion: "TLSv1.3",
    ALPNProtocols: ["h2"],
    servername: "",
    checkServerIdentity: () => undefined,
  });
  await once(socket, "secureConnect");
  const s = http2.connect(`https://${SERVER_IP}:${port}`, { createConnection: () => socket });
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

/** A CONNECT stream: resolves with it once answered 200, rejects when it closes unanswered. */
function connect(s: ClientHttp2Session): Promise<http2.ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = s.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" }, { endStream: false });
    } catch (err) {
      reject(err);
      return;
    }
    stream.on("error", () => {});
    stream.once("response", (h) =>
      h[":status"] === 200 ? resolve(stream) : reject(new Error(`${h[":status"]}`)),
    );
    stream.once("close", () => reject(new Error(`closed unanswered (rst ${stream.rstCode})`)));
  });
}

async function echo(s: http2.ClientHttp2Stream, text: string): Promise<string> {
  s.write(text);
  const [d] = (await once(s, "data")) as [Buffer];
  return d.toString();
}

t.test(
  "past the client certificate's notAfter the server GOAWAYs; open streams go on",
  { timeout: 15_000 },
  async (t) => {
    const handled: string[] = [];
    const server = new HboneServer({
      handler: (stream: ServerHttp2Stream) => {
        handled.push(stream.session?.socket?.remotePort?.toString() ?? "");
        stream.respond({ ":status": 200 });
        stream.pipe(stream);
      },
    });
    const serverBundle = await pki.issue(SERVER);
    const listener = await server.listen({ host: SERVER_IP, port: 0 }, { cert: async () => serverBundle });
    t.teardown(() => server.close());
    const port = listener.address().port;

    // X.509 times have whole seconds: about 1-2 s of validity.
    const shortLived = await pki.issue(CLIENT, { notAfter: new Date(Date.now() + 2000) });
    const expired = await session(port, shortLived);
    t.teardown(() => expired.destroy());
    const goaway = once(expired, "goaway");
    const first = await connect(expired);
    t.equal(await echo(first, "one"), "one", "served while the certificate is valid");
    t.equal(handled.length, 1);

    const [code] = (await goaway) as [number];
    const at = Date.now();
    t.equal(code, http2.constants.NGHTTP2_NO_ERROR, "a graceful GOAWAY");
    t.ok(
      at >= Math.floor(shortLived.notAfter.getTime() / 1000) * 1000 - 50,
      "not before the certificate's notAfter",
    );
    t.equal(await echo(first, "still"), "still", "the stream open across the expiry keeps echoing");

    await t.rejects(connect(expired), "no new stream on the expired session");
    t.equal(handled.length, 1, "the handler never saw it");

    const fresh = await session(port, await pki.issue(CLIENT));
    t.teardown(() => fresh.destroy());
    const next = await connect(fresh);
    t.equal(await echo(next, "two"), "two", "a new session with a current certificate is served");
    t.equal(handled.length, 2);
    first.close();
    next.close();
  },
);

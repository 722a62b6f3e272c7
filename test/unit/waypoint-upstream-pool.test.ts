// The HTTP/1.1 upstream pool over tunnels (streams that are not net.Sockets,
// as HBONE streams are): a backend that closes an idle keep-alive connection
// must take that connection out of the pool, so the next request opens a new
// one instead of waiting forever on a tunnel nobody reads. Also the mirror's
// timeout, which cannot rely on socket timeouts there.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { Duplex } from "node:stream";
import t from "tap";
import { ClusterPool } from "../../waypoint/upstream/pool.js";
import type { Upstream } from "../../waypoint/upstream/upstream.js";

/** A tunnel-like stream over TCP: half-open like an Http2Stream (the peer's end does not close it). */
function tunnel(sock: net.Socket): Duplex {
  const d = new Duplex({
    allowHalfOpen: true,
    read() {
      sock.resume();
    },
    write(chunk, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  sock.on("data", (c: Buffer) => {
    if (!d.push(c)) sock.pause();
  });
  sock.on("end", () => d.push(null));
  sock.on("close", () => d.destroy());
  return d;
}

function get(agent: http.Agent, port: number, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get({ agent, host: "127.0.0.1", port, path: "/" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve("timeout");
    }, timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("error", (e) => resolve(e.message));
  });
}

t.test("a keep-alive connection the backend closed leaves the pool", async (t) => {
  const server = http.createServer((_req, res) => res.end("ok"));
  server.keepAliveTimeout = 50; // closes idle connections quickly, as Node's default 5 s does slowly
  const closed: Promise<unknown>[] = [];
  server.on("connection", (s: net.Socket) => closed.push(once(s, "close")));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  let opened = 0;
  const upstream: Upstream = {
    connect: (ep) =>
      new Promise((resolve, reject) => {
        opened++;
        const s = net.connect({ host: ep.ip, port: ep.port, allowHalfOpen: true }, () => resolve(tunnel(s)));
        s.once("error", reject);
      }),
  };
  const pool = new ClusterPool(upstream, { cluster: "test" });
  t.teardown(() => pool.close());

  t.equal(await get(pool.h1Agent(), port, 2000), 200, "first request");
  const free = Object.values(pool.h1Agent().freeSockets).flat();
  t.equal(free.length, 1, "the connection went back to the pool");
  const poolSide = once(free[0]!, "close").then(() => true);
  await Promise.all(closed); // the backend closed the idle connection (Node checks about once a second)
  const gone = await Promise.race([poolSide, new Promise((r) => setTimeout(() => r(false), 2000).unref())]);
  t.ok(gone, "... and the pool's end of it closes");
  t.equal(
    await get(pool.h1Agent(), port, 2000),
    200,
    "the next request gets a new connection, not the dead one",
  );
  t.equal(opened, 2, "two connections were opened");
});

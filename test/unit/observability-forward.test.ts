// NetnsForward on loopback (both ends in this process's namespace; the
// netns ends are exercised by test/netns/observability-mesh): bytes both
// ways, a taken port falls back to a free one only when asked, a target that
// is down closes the client, close() ends connections in flight.
import { once } from "node:events";
import net from "node:net";
import t, { type Test } from "tap";
import { NetnsForward } from "../../local/observability-forward.js";

async function echoServer(t: Test): Promise<net.Server> {
  const s = net.createServer((c) => c.pipe(c));
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

function roundTrip(port: number, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port });
    let got = "";
    c.on("connect", () => c.write(msg));
    c.on("data", (d) => {
      got += d;
      if (got.length >= msg.length) c.end();
    });
    c.on("close", () => resolve(got));
    c.on("error", reject);
  });
}

t.test("forwards bytes both ways", async (t) => {
  const echo = await echoServer(t);
  const f = await NetnsForward.start({
    listen: { host: "127.0.0.1", port: 0 },
    target: { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port },
  });
  t.teardown(() => f.close());
  t.match(f.address, /^127\.0\.0\.1:\d+$/);
  const big = "x".repeat(200_000);
  t.equal(await roundTrip(f.port, big), big);
  t.equal(await roundTrip(f.port, "hello"), "hello");
});

t.test("a taken port: an error, or any free port with anyPortIfTaken", async (t) => {
  const echo = await echoServer(t);
  const target = { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port };
  const taken = target.port;
  await t.rejects(NetnsForward.start({ listen: { host: "127.0.0.1", port: taken }, target }), {
    code: "EADDRINUSE",
  });
  const f = await NetnsForward.start({
    listen: { host: "127.0.0.1", port: taken },
    target,
    anyPortIfTaken: true,
  });
  t.teardown(() => f.close());
  t.not(f.port, taken);
  t.equal(await roundTrip(f.port, "ok"), "ok");
});

t.test("target down: the client's connection closes; close() ends connections in flight", async (t) => {
  const gone = net.createServer();
  gone.listen(0, "127.0.0.1");
  await once(gone, "listening");
  const port = (gone.address() as net.AddressInfo).port;
  await new Promise<void>((r) => gone.close(() => r()));
  const f = await NetnsForward.start({
    listen: { host: "127.0.0.1", port: 0 },
    target: { host: "127.0.0.1", port },
  });
  t.equal(await roundTrip(f.port, "x"), "", "closed without data");
  await f.close();

  const echo = await echoServer(t);
  const g = await NetnsForward.start({
    listen: { host: "127.0.0.1", port: 0 },
    target: { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port },
  });
  const gPort = g.port;
  const c = net.connect({ host: "127.0.0.1", port: gPort });
  c.write("a");
  await once(c, "data");
  const closed = once(c, "close");
  await g.close();
  await closed;
  t.pass("open connection ended by close()");
  await t.rejects(roundTrip(gPort, "y"), { code: "ECONNREFUSED" }, "no longer listening");
});

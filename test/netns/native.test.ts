// The native layer against real namespaces: sockets listening and connecting
// inside a namespace, the capture rules, SO_ORIGINAL_DST, marks that bypass
// capture, and transparent connections that keep the caller's address.
import fs from "node:fs";
import net from "node:net";
import t from "tap";
import {
  applyCapture,
  hasCapture,
  PORTS,
  removeCapture,
  ZTUNNEL_MARK,
} from "../../ztunnel/node-agent/capture.js";
import { runCommand } from "../../ztunnel/node-agent/command.js";
import {
  connectInNetns,
  getMark,
  listenInNetns,
  Netns,
  NetnsSyscallError,
  originalDst,
  withNetns,
} from "../../ztunnel/node-agent/native.js";
import { nameServer, needsRoot, netnsPair, readAll, serveIn } from "./netns-fixture.js";

const nsInode = (p: string) => fs.statSync(p).ino;

t.test("listen inside a namespace, connect from another", { skip: needsRoot }, async (t) => {
  const home = nsInode("/proc/thread-self/ns/net");
  const { a, b } = await netnsPair(t);
  await nameServer(t, a.path, 7000, "a");
  const s = await connectInNetns(b.path, { host: a.ip, port: 7000 });
  t.equal(s.localAddress, b.ip, "the client socket lives in b");
  t.equal(await readAll(s), `a ${b.ip}`, "served in a, to b's address");

  // The listener is in a only: b's own loopback has nothing on 7000.
  await t.rejects(connectInNetns(b.path, { host: "127.0.0.1", port: 7000 }), { code: "ECONNREFUSED" });
  // And the thread is back home after all of it.
  t.equal(nsInode("/proc/thread-self/ns/net"), home);
});

t.test("withNetns switches the thread and always switches back", { skip: needsRoot }, async (t) => {
  const { a, b } = await netnsPair(t);
  const home = nsInode("/proc/thread-self/ns/net");
  const inside = withNetns(a.path, () => nsInode("/proc/thread-self/ns/net"));
  t.equal(inside, nsInode(a.path), "inside the target namespace during the callback");
  t.equal(nsInode("/proc/thread-self/ns/net"), home, "back home afterwards");
  t.throws(() =>
    withNetns(a.path, () => {
      throw new Error("boom");
    }),
  );
  t.equal(nsInode("/proc/thread-self/ns/net"), home, "back home after a throw");
  t.throws(() => withNetns(a.path, () => Promise.resolve(1)), /synchronous/);
  t.equal(nsInode("/proc/thread-self/ns/net"), home, "back home after a refused async callback");
  const h = Netns.open(a.path);
  const nested = withNetns(
    h,
    () => withNetns(b.path, () => nsInode("/proc/thread-self/ns/net")) && nsInode("/proc/thread-self/ns/net"),
  );
  t.equal(nested, nsInode(a.path), "nesting restores the outer namespace");
  h.close();
  t.throws(() => withNetns(h, () => 1), /closed/, "a closed handle is refused, never reused");
  t.throws(() => Netns.open("/var/run/netns/ambit-tnothere-x"), NetnsSyscallError);
});

t.test("a port already bound in the namespace is an EADDRINUSE error", { skip: needsRoot }, async (t) => {
  const { a } = await netnsPair(t);
  await nameServer(t, a.path, 7001, "a");
  t.throws(() => listenInNetns(a.path, { port: 7001 }), { code: "NETNS_SYSCALL", errnoCode: "EADDRINUSE" });
  // With SO_REUSEPORT on both, a second listener is allowed (ztunnel upgrades).
  const fd1 = listenInNetns(a.path, { port: 7002, reusePort: true });
  const fd2 = listenInNetns(a.path, { port: 7002, reusePort: true });
  const servers = [fd1, fd2].map((fd) => net.createServer((s) => s.end("r")).listen({ fd }));
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const s = await connectInNetns(a.path, { host: a.ip, port: 7002 });
  t.equal(await readAll(s), "r");
});

t.test("capture: SO_ORIGINAL_DST, marks bypass, transparent source", { skip: needsRoot }, async (t) => {
  const { a, b } = await netnsPair(t);
  // b is "another pod": a real server on 80 and 9999.
  await nameServer(t, b.path, 80, "b80");
  await nameServer(t, b.path, 9999, "b9999");
  // a is the enrolled pod: its app on 8080, ztunnel's listeners on 15001/15006.
  await nameServer(t, a.path, 8080, "app");
  await serveIn(
    t,
    a.path,
    PORTS.outbound,
    (s) => {
      const d = originalDst(s);
      s.end(`outbound ${d.address}:${d.port} from ${s.remoteAddress}`);
    },
    "127.0.0.1",
  );
  await serveIn(t, a.path, PORTS.inbound, (s) => {
    const d = originalDst(s);
    // Inbound: connect to the app from inside the pod, as the caller.
    connectInNetns(a.path, {
      host: d.address,
      port: d.port,
      localAddress: s.remoteAddress,
      transparent: true,
      mark: ZTUNNEL_MARK,
    }).then(
      (up) => {
        up.on("error", () => s.destroy());
        s.pipe(up).pipe(s);
      },
      () => s.destroy(),
    );
  });

  const direct = await connectInNetns(a.path, { host: b.ip, port: 80 });
  t.equal(await readAll(direct), `b80 ${a.ip}`, "before capture: plain");

  await applyCapture(a.path);
  await applyCapture(a.path); // idempotent
  t.ok(await hasCapture(a.path));
  const save = (await runCommand(["nsenter", `--net=${a.path}`, "iptables-save"])).stdout;
  t.equal(
    save.split("\n").filter((l) => l.startsWith("-A OUTPUT")).length,
    2,
    "one jump per table in OUTPUT after two applies",
  );
  t.equal(save.split("\n").filter((l) => l.includes("REDIRECT --to-ports 15001")).length, 1);

  const captured = await connectInNetns(a.path, { host: b.ip, port: 80 });
  t.equal(
    await readAll(captured),
    `outbound ${b.ip}:80 from ${a.ip}`,
    "outbound captured, original destination recovered",
  );

  const marked = await connectInNetns(a.path, { host: b.ip, port: 9999, mark: ZTUNNEL_MARK });
  t.equal(getMark(marked), ZTUNNEL_MARK);
  t.equal(await readAll(marked), `b9999 ${a.ip}`, "ztunnel's marked socket bypasses capture");

  const local = await connectInNetns(a.path, { host: a.ip, port: 8080 });
  t.equal(await readAll(local), `app ${a.ip}`, "traffic to the pod's own address is not captured");

  const inbound = await connectInNetns(b.path, { host: a.ip, port: 8080 });
  t.equal(
    await readAll(inbound),
    `app ${b.ip}`,
    "inbound captured on 15006 and delivered with the caller's address",
  );

  await removeCapture(a.path);
  await removeCapture(a.path); // fine when already gone
  t.notOk(await hasCapture(a.path));
  const after = await connectInNetns(a.path, { host: b.ip, port: 80 });
  t.equal(await readAll(after), `b80 ${a.ip}`, "after removal: plain again");
  const rules = (await runCommand(["nsenter", `--net=${a.path}`, "ip", "rule"])).stdout;
  t.notMatch(rules, /0x111/, "policy rule removed");
});

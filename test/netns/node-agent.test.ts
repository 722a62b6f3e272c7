// NodeAgent against real namespaces: enrolment opens the listeners and the
// capture, handlers get the pod and the original destination, un-enrolment
// removes both, and a restarted agent restores capture by reconciling.
import dgram from "node:dgram";
import { once } from "node:events";
import type net from "node:net";
import t from "tap";
import { NodeAgent, type NodeAgentOptions, OWN_SOCKET_MARK } from "../../ztunnel/node-agent/agent.js";
import { hasCapture } from "../../ztunnel/node-agent/capture.js";
import { runCommand } from "../../ztunnel/node-agent/command.js";
import { closeFd, connectInNetns, listenInNetns } from "../../ztunnel/node-agent/native.js";
import { nameServer, needsRoot, netnsPair, readAll, serveIn } from "./netns-fixture.js";

/** Handlers that answer with what they were told, so the test can read it back. */
function echoHandlers(): NodeAgentOptions {
  return {
    onOutbound: (s, ctx) => s.end(`outbound ${ctx.podKey} ${ctx.origDst.address}:${ctx.origDst.port}`),
    onInbound: (s, ctx) => s.end(`inbound ${ctx.podKey} ${ctx.origDst.address}:${ctx.origDst.port}`),
    onHbone: (s, ctx) => s.end(`hbone ${ctx.podKey} from ${s.remoteAddress}`),
    onDnsUdp: (msg, rinfo, socket, ctx) =>
      socket.send(Buffer.from(`dns ${ctx.podKey} ${msg.toString()}`), rinfo.port, rinfo.address),
    onDnsTcp: (s, ctx) => s.end(`dnstcp ${ctx.podKey}`),
  };
}

async function ask(netnsPath: string, host: string, port: number, mark?: number): Promise<string> {
  const s: net.Socket = await connectInNetns(netnsPath, {
    host,
    port,
    ...(mark !== undefined ? { mark } : {}),
  });
  return readAll(s);
}

/** A UDP query from inside the namespace to host:53 (redirected to 15053 when captured). */
async function udpQuery(netnsPath: string, host: string, text: string): Promise<string> {
  // dgram creates its socket asynchronously at bind: make it in the namespace first.
  const sock = dgram.createSocket("udp4");
  const bound = once(sock, "listening");
  sock.bind({ fd: listenInNetns(netnsPath, { port: 0, protocol: "udp" }) });
  await bound;
  try {
    sock.send(text, 53, host);
    const [msg] = (await once(sock, "message")) as [Buffer];
    return msg.toString();
  } finally {
    sock.close();
  }
}

t.test("enrol, capture, un-enrol, reconcile", { skip: needsRoot }, async (t) => {
  const { a, b } = await netnsPair(t);
  await nameServer(t, b.path, 80, "b80");
  const pod = { key: "demo/a", netnsPath: a.path, ip: a.ip };

  const seen: string[] = [];
  const agent = new NodeAgent({
    ...echoHandlers(),
    onPodListeners: (l) => seen.push(`up ${l.podKey}`),
    onPodRemoved: (k) => seen.push(`down ${k}`),
  });
  t.teardown(() => agent.close({ removeCapture: true }));

  const listeners = await agent.enroll(pod);
  t.ok(listeners.outbound.listening && listeners.inbound.listening && listeners.hbone.listening);
  t.same(agent.pods(), [pod]);
  t.ok(await hasCapture(a.path));

  t.equal(
    await ask(a.path, b.ip, 80),
    `outbound demo/a ${b.ip}:80`,
    "the pod's outbound goes to the handler with the original destination",
  );
  t.equal(
    await ask(a.path, b.ip, 80, OWN_SOCKET_MARK),
    `b80 ${a.ip}`,
    "ztunnel's marked socket goes straight out",
  );
  t.equal(
    await ask(b.path, a.ip, 8080),
    `inbound demo/a ${a.ip}:8080`,
    "plain text arriving at the pod goes to the inbound handler",
  );
  t.equal(
    await ask(b.path, a.ip, 15008),
    `hbone demo/a from ${b.ip}`,
    "15008 reaches the HBONE handler directly",
  );
  t.equal(await udpQuery(a.path, "10.77.0.2", "q1"), "dns demo/a q1", "DNS over UDP is redirected to 15053");
  t.equal(await ask(a.path, b.ip, 53), "dnstcp demo/a", "DNS over TCP is redirected to 15053");

  // Enrolling again changes nothing (rules idempotent, same listeners).
  t.equal(await agent.enroll(pod), listeners);

  await agent.unenroll(pod.key);
  t.notOk(await hasCapture(a.path), "rules removed");
  t.notOk(listeners.outbound.listening, "listeners closed");
  t.equal(await ask(a.path, b.ip, 80), `b80 ${a.ip}`, "traffic is plain again");
  t.same(seen, ["up demo/a", "down demo/a"]);

  // A ztunnel restart: the first agent stops with its rules left in place
  // (traffic fails closed), a new one reconciles and restores service.
  await agent.enroll(pod);
  await agent.close();
  t.ok(await hasCapture(a.path), "rules kept across a restart");
  await t.rejects(
    ask(a.path, b.ip, 80),
    { code: "ECONNREFUSED" },
    "no listener: captured traffic is refused, not leaked",
  );
  const agent2 = new NodeAgent(echoHandlers());
  t.teardown(() => agent2.close({ removeCapture: true }));
  t.same(await agent2.reconcile([pod]), []);
  t.equal(await ask(a.path, b.ip, 80), `outbound demo/a ${b.ip}:80`, "capture restored by reconcile");
  t.same(await agent2.reconcile([]), []);
  t.notOk(await hasCapture(a.path), "reconcile removes pods no longer enrolled");
});

t.test("connections aimed at ztunnel's own ports are refused, not looped", { skip: needsRoot }, async (t) => {
  const { a, b } = await netnsPair(t);
  let handled = 0;
  const agent = new NodeAgent({
    onOutbound: (s) => {
      handled++;
      s.destroy();
    },
    onInbound: (s) => {
      handled++;
      s.destroy();
    },
    onHbone: (s) => s.destroy(),
  });
  t.teardown(() => agent.close({ removeCapture: true }));
  await agent.enroll({ key: "demo/a", netnsPath: a.path, ip: a.ip });
  // From outside straight to 15006 (redirected to itself) and from the pod to its own 15001.
  const s1 = await connectInNetns(b.path, { host: a.ip, port: 15006 });
  t.equal(await readAll(s1), "");
  const s2 = await connectInNetns(a.path, { host: "127.0.0.1", port: 15001 });
  t.equal(await readAll(s2), "");
  t.equal(handled, 0, "neither reached a handler");
});

t.test(
  "an upgraded ztunnel listens beside the old one; queued connections move over when it closes",
  { skip: needsRoot },
  async (t) => {
    const { a, b } = await netnsPair(t);
    const pod = { key: "demo/a", netnsPath: a.path, ip: a.ip };
    const next = new NodeAgent(echoHandlers());
    t.teardown(() => next.close({ removeCapture: true }));
    // The old ztunnel's 15008 listener, as a bare socket nobody accepts from:
    // the connections made now wait in its accept queue.
    const old = listenInNetns(a.path, { port: 15008, reusePort: true });
    const queued = await Promise.all(
      [1, 2, 3].map(() => connectInNetns(b.path, { host: a.ip, port: 15008 })),
    );
    const answered = queued.map(readAll);
    // The new ztunnel starts beside it.
    await next.enroll(pod);
    t.equal(
      (
        await runCommand(["nsenter", `--net=${a.path}`, "cat", "/proc/sys/net/ipv4/tcp_migrate_req"])
      ).stdout.trim(),
      "1",
      "request migration is on in the pod",
    );
    closeFd(old); // the old ztunnel stops
    for (const reply of answered) t.equal(await reply, `hbone demo/a from ${b.ip}`);
  },
);

t.test(
  "connections open before enrolment keep working after capture is installed",
  { skip: needsRoot },
  async (t) => {
    const { a, b } = await netnsPair(t);
    await serveIn(t, b.path, 7100, (s) => s.pipe(s)); // echo
    const live = await connectInNetns(a.path, { host: b.ip, port: 7100 });
    const echo = async (text: string) => {
      live.write(text);
      const [d] = (await once(live, "data")) as [Buffer];
      return d.toString();
    };
    t.equal(await echo("before"), "before");
    const agent = new NodeAgent(echoHandlers());
    t.teardown(() => agent.close({ removeCapture: true }));
    await agent.enroll({ key: "demo/a", netnsPath: a.path, ip: a.ip });
    t.equal(await echo("after"), "after", "mid-stream packets are not redirected (only SYNs are)");
    live.destroy();
    t.equal(await ask(a.path, b.ip, 7100), "outbound demo/a 10.77.0.2:7100", "new connections are captured");
  },
);

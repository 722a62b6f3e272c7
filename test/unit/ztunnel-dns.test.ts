import dgram from "node:dgram";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import dnsPacket from "dns-packet";
import t from "tap";
import type { MeshService } from "../../core/model/types.js";
import { candidateHostnames, DnsProxy, parseResolvConf } from "../../ztunnel/dns/proxy.js";

const server: MeshService = {
  key: "demo/server.demo.svc.cluster.local",
  name: "server",
  namespace: "demo",
  hostname: "server.demo.svc.cluster.local",
  vips: ["10.96.0.10", "fd00::10"],
  ports: [{ port: 80, targetPort: 8080, appProtocol: "http" }],
};
const headless: MeshService = { ...server, key: "demo/db", name: "db", hostname: "db.demo.svc.cluster.local", vips: [] };
const services = new Map([server, headless].map((s) => [s.hostname, s]));
const source = {
  serviceByHostname: (h: string) => services.get(h),
  endpointIps: (s: MeshService) => (s.name === "db" ? ["10.1.0.5", "10.1.0.6"] : []),
};

t.test("candidate hostnames follow the pod's namespace", async (t) => {
  t.same(candidateHostnames("server", "demo", "cluster.local"), ["server.demo.svc.cluster.local"]);
  t.same(candidateHostnames("server.demo", "x", "cluster.local"), ["server.demo.svc.cluster.local"]);
  t.same(candidateHostnames("server.demo.svc", "x", "cluster.local"), ["server.demo.svc.cluster.local"]);
  t.same(candidateHostnames("Server.Demo.svc.cluster.local.", "x", "cluster.local"), [
    "server.demo.svc.cluster.local",
  ]);
  t.same(candidateHostnames("example.com.au", "x", "cluster.local"), []);
});

async function udpAsk(port: number, name: string, type: "A" | "AAAA"): Promise<dnsPacket.Packet> {
  const sock = dgram.createSocket("udp4");
  t.teardown(() => sock.close());
  sock.send(dnsPacket.encode({ type: "query", id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }), port, "127.0.0.1");
  const [msg] = (await once(sock, "message")) as [Buffer];
  return dnsPacket.decode(msg);
}

t.test("answers Service names over UDP and forwards the rest", async (t) => {
  // A real upstream resolver on loopback that answers everything with 192.0.2.1.
  const upstream = dgram.createSocket("udp4");
  upstream.on("message", (msg, r) => {
    const q = dnsPacket.decode(msg);
    upstream.send(
      dnsPacket.encode({ type: "response", id: q.id, questions: q.questions, answers: [{ type: "A", name: q.questions![0]!.name, data: "192.0.2.1" }] }),
      r.port,
      r.address,
    );
  });
  upstream.bind(0, "127.0.0.1");
  await once(upstream, "listening");
  t.teardown(() => upstream.close());

  const proxy = new DnsProxy({ source, upstreams: [`127.0.0.1:${(upstream.address() as AddressInfo).port}`] });
  const sock = dgram.createSocket("udp4");
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  t.teardown(() => sock.close());
  proxy.serveUdp(sock, "demo");
  const port = (sock.address() as AddressInfo).port;

  const a = await udpAsk(port, "server", "A");
  t.same(a.answers?.map((x) => (x as { data: unknown }).data), ["10.96.0.10"]);
  t.equal(a.id, 7);
  const aaaa = await udpAsk(port, "server.demo.svc", "AAAA");
  t.same(aaaa.answers?.map((x) => (x as { data: unknown }).data), ["fd00::10"]);
  const hl = await udpAsk(port, "db.demo", "A");
  t.same(hl.answers?.map((x) => (x as { data: unknown }).data), ["10.1.0.5", "10.1.0.6"]);
  const ext = await udpAsk(port, "example.org", "A");
  t.same(ext.answers?.map((x) => (x as { data: unknown }).data), ["192.0.2.1"], "forwarded to the node's resolver");
});

t.test("serves TCP with length prefixes and survives garbage", async (t) => {
  const proxy = new DnsProxy({ source, upstreams: [] });
  const srv = net.createServer();
  proxy.serveTcp(srv, "demo");
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  t.teardown(() => srv.close());
  const c = net.connect((srv.address() as AddressInfo).port, "127.0.0.1");
  await once(c, "connect");
  t.teardown(() => c.destroy());
  const garbage = Buffer.from([0, 3, 1, 2, 3]);
  const q = dnsPacket.encode({ type: "query", id: 9, questions: [{ type: "A", name: "server.demo.svc.cluster.local" }] });
  const framed = Buffer.alloc(2 + q.length);
  framed.writeUInt16BE(q.length, 0);
  q.copy(framed, 2);
  c.write(Buffer.concat([garbage, framed]));
  let buf = Buffer.alloc(0);
  const replies: dnsPacket.Packet[] = [];
  while (replies.length < 2) {
    const [chunk] = (await once(c, "data")) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      replies.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  }
  t.equal(replies[0]!.flags! & 0xf, 1, "FORMERR for garbage");
  t.same(replies[1]!.answers?.map((x) => (x as { data: unknown }).data), ["10.96.0.10"]);
});

t.test("parses resolv.conf", async (t) => {
  t.same(parseResolvConf("# c\nnameserver 10.0.0.2\nsearch x\nnameserver ::1\n"), ["10.0.0.2", "::1"]);
});

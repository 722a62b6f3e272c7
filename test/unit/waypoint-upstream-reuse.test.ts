// Upstream reuse on the production path (HBONE both ways, in one process on
// loopback): the waypoint keeps its upstream tunnels and the connections
// inside them, as Envoy's connection pools do. Counted at the backend's
// "ztunnel" (CONNECT streams) and at the app (TCP connections): HTTP/1.1
// keep-alive requests reuse an idle upstream connection, and gRPC calls are
// multiplexed over one upstream HTTP/2 session, never one tunnel per request.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import t from "tap";
import type { WaypointService } from "../../core/model/waypoint.js";
import { httpSocket } from "../../waypoint/upstream/upstream.js";
import { cluster, cname, route, service } from "./waypoint-harness.js";
import { BACKEND, hboneWaypointMesh, POD_IP } from "./waypoint-hbone-mesh.js";

const webService =
  (protocol: "http" | "grpc") =>
  (appPort: number): WaypointService =>
    service({
      ...(protocol === "grpc" ? { ports: [{ port: 80, protocol: "grpc" as const }] } : {}),
      clusters: [
        cluster("web", [], {
          protocol,
          endpoints: [{ ip: POD_IP, port: appPort, identity: BACKEND }],
        }),
      ],
      routes: [route("r", { backends: [{ cluster: cname("web"), weight: 1 }] })],
    });

t.test("HTTP/1.1: keep-alive requests reuse the upstream tunnel and connection", async (t) => {
  const app = http.createServer((req, res) => res.end(`ok ${req.url}`));
  const m = await hboneWaypointMesh(t, app, webService("http"));
  // 4 downstream keep-alive connections (4 tunnels in), 25 requests each, one at a time per connection.
  const agents = await Promise.all(
    [0, 1, 2, 3].map(async () => {
      const tun = httpSocket(await m.tunnel());
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agent.createConnection = () => tun as unknown as net.Socket;
      t.teardown(() => {
        agent.destroy();
        tun.destroy();
      });
      return agent;
    }),
  );
  const get = (agent: http.Agent, path: string) =>
    new Promise<string>((resolve, reject) => {
      const req = http.get({ agent, path, headers: { host: "web" } }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c;
        });
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
    });
  for (let round = 0; round < 25; round++) {
    const bodies = await Promise.all(agents.map((a, i) => get(a, `/${round}/${i}`)));
    t.same(
      bodies,
      [0, 1, 2, 3].map((i) => `ok /${round}/${i}`),
    );
  }
  t.ok(
    m.connects() >= 1 && m.connects() <= 4,
    `100 requests, 4 at a time: ${m.connects()} upstream CONNECT streams`,
  );
  t.equal(m.appConns(), m.connects(), "one app connection per upstream tunnel");
});

t.test("gRPC: concurrent calls share one upstream HTTP/2 session in one tunnel", async (t) => {
  const app = http2.createServer();
  app.on("stream", (stream, headers) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(Buffer.from(String(headers[":path"])));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  app.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  t.teardown(() => {
    for (const s of sessions) s.destroy();
  });
  const m = await hboneWaypointMesh(t, app, webService("grpc"));
  const downstream = await Promise.all(
    [0, 1].map(async () => {
      const tun = await m.tunnel();
      const s = http2.connect("http://web", { createConnection: () => tun as unknown as net.Socket });
      t.teardown(() => s.destroy());
      return s;
    }),
  );
  const call = (s: http2.ClientHttp2Session, path: string) =>
    new Promise<{ body: string; status: string | undefined }>((resolve, reject) => {
      const st = s.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      let body = "";
      let status: string | undefined;
      st.on("data", (c: Buffer) => {
        body += c;
      });
      st.on("trailers", (tr) => {
        status = tr["grpc-status"] as string | undefined;
      });
      st.on("end", () => resolve({ body, status }));
      st.on("error", reject);
      st.end(Buffer.alloc(5));
    });
  for (let round = 0; round < 3; round++) {
    const calls = [];
    for (let i = 0; i < 50; i++) calls.push(call(downstream[i % 2]!, `/svc.Echo/Call${round}-${i}`));
    const got = await Promise.all(calls);
    t.ok(
      got.every((g, i) => g.status === "0" && g.body === `/svc.Echo/Call${round}-${i}`),
      `round ${round}: 50 concurrent calls answered, each with its own body and grpc-status`,
    );
  }
  t.equal(m.connects(), 1, "150 calls over 2 downstream sessions: one upstream CONNECT stream");
  t.equal(m.appConns(), 1, "... and one HTTP/2 connection at the app");
});

t.test("an HTTP/1.1 Upgrade through the HBONE path is spliced both ways", async (t) => {
  const app = http.createServer((_req, res) => res.end("no upgrade"));
  const upgraded = new Set<net.Socket>();
  app.on("upgrade", (req: http.IncomingMessage, sock: net.Socket) => {
    upgraded.add(sock);
    sock.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\nx-path: ${req.url}\r\n\r\n`,
    );
    sock.on("data", (c: Buffer) => sock.write(c));
    sock.on("end", () => sock.end());
  });
  t.teardown(() => {
    for (const s of upgraded) s.destroy();
  });
  const m = await hboneWaypointMesh(t, app, webService("http"));
  const tun = await m.tunnel();
  t.teardown(() => tun.destroy());
  let got = "";
  const until = (s: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (got.includes(s)) {
          tun.off("data", onData);
          resolve();
        }
      };
      const onData = (c: Buffer) => {
        got += c.toString("latin1");
        check();
      };
      tun.on("data", onData);
      tun.once("close", () => reject(new Error(`tunnel closed; got ${JSON.stringify(got)}`)));
      check();
    });
  tun.write("GET /ws HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n");
  await until("\r\n\r\n");
  t.match(got, /^HTTP\/1\.1 101 /, "101 from the app through both tunnels");
  t.match(got, /x-path: \/ws/i);
  got = "";
  tun.write("ping-1 ");
  tun.write("ping-2");
  await until("ping-1 ping-2");
  t.pass("bytes echoed both ways after the upgrade");
});

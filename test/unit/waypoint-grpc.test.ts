import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import grpc from "@grpc/grpc-js";
import t from "tap";
import type { WaypointService } from "../../core/model/waypoint.js";
import { cluster, cname, h2Backend, httpBackend, route, service, startWaypoint } from "./waypoint-harness.js";

// A gRPC service with raw-bytes messages: no codegen needed for the test.
const raw = {
  serialize: (b: Buffer) => b,
  deserialize: (b: Buffer) => b,
};
function method(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  };
}
const def = { Say: method("/test.Echo/Say"), Fail: method("/test.Echo/Fail") };

async function grpcBackend(
  t: Tap,
  name: string,
  failEvery = 0,
): Promise<{ port: number; calls: () => number; nextCall: () => Promise<void> }> {
  let n = 0;
  const waiters: (() => void)[] = [];
  const server = new grpc.Server();
  server.addService(def, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      n++;
      for (const w of waiters.splice(0)) w();
      if (failEvery && n % failEvery === 1) return cb({ code: grpc.status.UNAVAILABLE, details: "flaky" });
      const md = new grpc.Metadata();
      md.set("x-backend", name);
      call.sendMetadata(md);
      cb(null, Buffer.concat([Buffer.from(`${name}:`), call.request]));
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      n++;
      cb({ code: grpc.status.PERMISSION_DENIED, details: "nope" });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  t.teardown(() => server.forceShutdown());
  return { port, calls: () => n, nextCall: () => new Promise<void>((r) => waiters.push(r)) };
}

type Tap = { teardown(fn: () => unknown): void };

function client(t: Tap, port: number) {
  const Ctor = grpc.makeGenericClientConstructor(def as unknown as grpc.ServiceDefinition, "Echo");
  const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (
      req: Buffer,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (e: grpc.ServiceError | null, r?: Buffer) => void,
    ) => void
  >;
  t.teardown(() => (c as unknown as grpc.Client).close());
  return (m: "Say" | "Fail", body: string, opts: grpc.CallOptions = {}) =>
    new Promise<{ code: number; body?: string; details?: string }>((resolve) =>
      c[m]!(Buffer.from(body), new grpc.Metadata(), opts, (e, r) =>
        resolve(e ? { code: e.code, details: e.details } : { code: 0, body: r!.toString() }),
      ),
    );
}

function grpcService(
  routes: WaypointService["routes"],
  clusters: WaypointService["clusters"],
): WaypointService {
  return service({ ports: [{ port: 80, protocol: "grpc" }], routes, clusters });
}

t.test(
  "gRPC through the waypoint: method routing, UNIMPLEMENTED on no match, status passthrough",
  async (t) => {
    const a = await grpcBackend(t, "a");
    const svc = grpcService(
      [
        route("say", {
          kind: "grpc",
          match: { grpc: { type: "Exact", service: "test.Echo", method: "Say" } },
          backends: [{ cluster: cname("a"), weight: 1 }],
        }),
        route("fail", {
          kind: "grpc",
          match: { grpc: { type: "Exact", method: "Fail" } },
          backends: [{ cluster: cname("a"), weight: 1 }],
        }),
      ],
      [cluster("a", [a.port], { protocol: "grpc" })],
    );
    const { port } = await startWaypoint(t, [svc]);
    const call = client(t, port);
    t.same(await call("Say", "hi"), { code: 0, body: "a:hi" });
    const f = await call("Fail", "x");
    t.equal(f.code, grpc.status.PERMISSION_DENIED);
    t.equal(f.details, "nope", "trailers carried through");
    // no route for this method
    const svc2 = grpcService(
      [
        route("only-fail", {
          kind: "grpc",
          match: { grpc: { type: "Exact", method: "Fail" } },
          backends: [{ cluster: cname("a"), weight: 1 }],
        }),
      ],
      [cluster("a", [a.port], { protocol: "grpc" })],
    );
    const w2 = await startWaypoint(t, [svc2]);
    const call2 = client(t, w2.port);
    const u = await call2("Say", "x");
    t.equal(u.code, grpc.status.UNIMPLEMENTED);
  },
);

t.test("gRPC retries on UNAVAILABLE, fault abort with a gRPC status, deadline", async (t) => {
  const flaky = await grpcBackend(t, "flaky", 3);
  const svc = grpcService(
    [
      route("abort", {
        kind: "grpc",
        match: { grpc: { type: "Exact", method: "Fail" } },
        filters: [
          { type: "Fault", fault: { abort: { grpcStatus: grpc.status.RESOURCE_EXHAUSTED, percent: 100 } } },
        ],
        backends: [{ cluster: cname("flaky"), weight: 1 }],
      }),
      route("say", {
        kind: "grpc",
        match: { grpc: { type: "Exact", method: "Say" } },
        backends: [{ cluster: cname("flaky"), weight: 1 }],
        retry: { attempts: 2, codes: [], grpcCodes: [grpc.status.UNAVAILABLE], backoffMs: 1 },
      }),
    ],
    [cluster("flaky", [flaky.port], { protocol: "grpc" })],
  );
  const { port } = await startWaypoint(t, [svc]);
  const call = client(t, port);
  for (let i = 0; i < 9; i++) t.equal((await call("Say", `m${i}`)).code, 0);
  t.ok(flaky.calls() > 9, "some calls were retried");
  const ab = await call("Fail", "x");
  t.equal(ab.code, grpc.status.RESOURCE_EXHAUSTED);
});

t.test("grpc-timeout deadline → DEADLINE_EXCEEDED from the waypoint", async (t) => {
  const slow = await h2Backend(t, (stream) => {
    setTimeout(() => {
      if (!stream.destroyed)
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-status": "0" },
          { endStream: true },
        );
    }, 2000).unref();
  });
  const svc = grpcService([], [cluster("web", [slow.port], { protocol: "grpc" })]);
  const { port } = await startWaypoint(t, [svc]);
  const call = client(t, port);
  const t0 = Date.now();
  const r = await call("Say", "x", { deadline: Date.now() + 300 });
  t.equal(r.code, grpc.status.DEADLINE_EXCEEDED);
  t.ok(Date.now() - t0 < 1500);
});

t.test(
  "h2c prior knowledge is sniffed on an http port; HTTP/1.1 keep-alive pipelining stays in order",
  async (t) => {
    const a = await httpBackend(t, "a");
    const svc = service({ clusters: [cluster("web", [a.port])], routes: [] });
    const { port } = await startWaypoint(t, [svc]);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    t.teardown(() => session.close());
    const body = await new Promise<string>((resolve, reject) => {
      const s = session.request({ ":path": "/h2", ":authority": "web" });
      let b = "";
      s.on("data", (c) => (b += c));
      s.on("end", () => resolve(b));
      s.on("error", reject);
    });
    t.equal(JSON.parse(body).url, "/h2");
    // two pipelined requests on one connection
    const sock = net.connect(port, "127.0.0.1");
    t.teardown(() => sock.destroy());
    await new Promise((r) => sock.once("connect", r));
    sock.write("GET /p1 HTTP/1.1\r\nhost: web\r\n\r\nGET /p2 HTTP/1.1\r\nhost: web\r\n\r\n");
    let text = "";
    await new Promise<void>((resolve) => {
      sock.on("data", (c) => {
        text += c;
        if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === 2 && text.includes('"/p2"')) resolve();
      });
    });
    t.ok(text.indexOf('"/p1"') < text.indexOf('"/p2"'), "responses in request order");
  },
);

t.test("WebSocket-style Upgrade is passed through", async (t) => {
  const server = http.createServer();
  const upgraded = new Set<net.Socket>();
  server.on("upgrade", (req, sock: net.Socket) => {
    upgraded.add(sock);
    sock.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\nx-path: ${req.url}\r\n\r\n`,
    );
    sock.pipe(sock);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    for (const s of upgraded) s.destroy();
    return new Promise((r) => server.close(r));
  });
  const up = (server.address() as net.AddressInfo).port;
  const svc = service({ clusters: [cluster("web", [up])], routes: [] });
  const { port } = await startWaypoint(t, [svc]);
  const sock = net.connect(port, "127.0.0.1");
  t.teardown(() => sock.destroy());
  await new Promise((r) => sock.once("connect", r));
  sock.write("GET /ws HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n");
  let text = "";
  await new Promise<void>((resolve) =>
    sock.on("data", (c) => {
      text += c;
      if (text.includes("\r\n\r\n") && !text.includes("ping")) sock.write("ping");
      if (text.includes("ping")) resolve();
    }),
  );
  t.match(text, /^HTTP\/1.1 101/);
  t.match(text, /x-path: \/ws/);
});

t.test("gRPC mirror gets a copy; h2c (non-gRPC) service over HTTP/2 both ways", async (t) => {
  const main = await grpcBackend(t, "main");
  const shadow = await grpcBackend(t, "shadow");
  const svc = grpcService(
    [
      route("say", {
        kind: "grpc",
        filters: [{ type: "RequestMirror", cluster: cname("shadow"), percent: 100 }],
        backends: [{ cluster: cname("main"), weight: 1 }],
      }),
    ],
    [
      cluster("main", [main.port], { protocol: "grpc" }),
      cluster("shadow", [shadow.port], { protocol: "grpc" }),
    ],
  );
  const { port } = await startWaypoint(t, [svc]);
  const call = client(t, port);
  const copied = shadow.nextCall();
  t.same(await call("Say", "m"), { code: 0, body: "main:m" });
  await copied;
  t.equal(shadow.calls(), 1, "the mirror got the call");

  const seenProto: string[] = [];
  const h2 = await h2Backend(t, (stream, headers) => {
    seenProto.push(String(headers[":path"]));
    stream.respond({ ":status": 200, "content-type": "text/plain" });
    stream.end(`h2:${headers[":path"]}`);
  });
  const plain = service({
    ports: [{ port: 80, protocol: "http2" }],
    clusters: [cluster("web", [h2.port], { protocol: "http2" })],
    routes: [],
  });
  const w2 = await startWaypoint(t, [plain]);
  const session = http2.connect(`http://127.0.0.1:${w2.port}`);
  t.teardown(() => session.close());
  const body = await new Promise<string>((resolve, reject) => {
    const s = session.request({ ":path": "/x", ":authority": "web" });
    let b = "";
    s.on("data", (c) => (b += c));
    s.on("end", () => resolve(b));
    s.on("error", reject);
  });
  t.equal(body, "h2:/x");
  t.same(seenProto, ["/x"]);
});

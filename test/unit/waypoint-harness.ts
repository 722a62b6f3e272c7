// Test harness for waypoint tests: real HTTP/1.1 and HTTP/2 backends on
// loopback, a real Waypoint in plain-TCP listener mode, and a tiny client.
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { WaypointCluster, WaypointRoute, WaypointService } from "../../core/model/waypoint.js";
import { Waypoint } from "../../waypoint/waypoint.js";

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Backend {
  name: string;
  port: number;
  seen: SeenRequest[];
  /** Resolves on the next request this backend sees. */
  next(): Promise<SeenRequest>;
}

export type BackendHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: string,
  n: number,
) => void;

/** An HTTP/1.1 backend answering `{backend, method, url, headers, body}` as JSON unless given a handler. */
export async function httpBackend(t: Teardown, name: string, handler?: BackendHandler): Promise<Backend> {
  const seen: SeenRequest[] = [];
  const waiters: ((r: SeenRequest) => void)[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      const r = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
      seen.push(r);
      for (const w of waiters.splice(0)) w(r);
      n++;
      if (handler) return handler(req, res, body, n);
      res.writeHead(200, { "content-type": "application/json", "x-backend": name });
      res.end(JSON.stringify({ backend: name, ...r }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return {
    name,
    port: (server.address() as AddressInfo).port,
    seen,
    next: () => new Promise((r) => waiters.push(r)),
  };
}

/** An h2c backend (prior knowledge) with a stream handler. */
export async function h2Backend(
  t: Teardown,
  handler: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{ port: number }> {
  const server = http2.createServer();
  server.on("stream", handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port };
}

export const VIP = "10.96.0.10";
export const NS = "default";

export function cluster(
  name: string,
  ports: number[],
  extra: Partial<WaypointCluster> = {},
): WaypointCluster {
  return {
    name: `${NS}/${name}.${NS}.svc.cluster.local:80`,
    service: `${NS}/${name}.${NS}.svc.cluster.local`,
    port: 80,
    protocol: "http",
    endpoints: ports.map((port) => ({ ip: "127.0.0.1", port })),
    ...extra,
  };
}

export function cname(name: string): string {
  return `${NS}/${name}.${NS}.svc.cluster.local:80`;
}

export function route(name: string, r: Partial<WaypointRoute>): WaypointRoute {
  return { name, kind: "http", match: {}, filters: [], backends: [], ...r };
}

export function service(
  s: Partial<WaypointService> & { routes: WaypointRoute[]; clusters: WaypointCluster[] },
): WaypointService {
  return {
    key: `${NS}/web.${NS}.svc.cluster.local`,
    name: "web",
    namespace: NS,
    hostname: `web.${NS}.svc.cluster.local`,
    vips: [VIP],
    ports: [{ port: 80, protocol: "http" }],
    authz: [],
    jwtRules: [],
    ...s,
  };
}

/** A started waypoint serving `services`, listening on loopback with every connection addressed to VIP:80. */
export async function startWaypoint(
  t: Teardown,
  services: WaypointService[],
  dst = { ip: VIP, port: 80 },
): Promise<{ wp: Waypoint; port: number }> {
  const wp = new Waypoint();
  await wp.start();
  wp.applyServices(services);
  const addr = await wp.listenTcp({ port: 0, dst });
  t.teardown(() => wp.close());
  return { wp, port: addr.port };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: () => Record<string, unknown>;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export function request(
  port: number,
  opts: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
    agent?: http.Agent | false;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: opts.method ?? "GET",
        path: opts.path ?? "/",
        headers: { host: "web", ...opts.headers },
        agent: opts.agent ?? agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

export function closeClientAgent(): void {
  agent.destroy();
}

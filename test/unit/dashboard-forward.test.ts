// The host's way to the dashboard of a local mesh: the controller's
// dashboard on a Unix socket, the supervisor's TCP forward to it. Real
// sockets: the page and its event stream pass through; a controller restart
// (server closed, a new one on the same path, stale file included) breaks
// only the open connections; a taken port falls back to a free one.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import type { ControllerView } from "../../controller/app.js";
import { DashboardServer } from "../../controller/dashboard/server.js";
import { DashboardForward, dashboardForwardAddress } from "../../local/supervisor-dashboard.js";

const view: ControllerView = {
  workloads: [],
  services: [],
  policies: [],
  errors: [],
  warnings: [],
  statuses: [],
  translatedAt: new Date(),
};

function dashboard(socket: string): DashboardServer {
  return new DashboardServer(
    { current: () => view, connections: () => [] },
    {
      host: "127.0.0.1",
      port: 0,
      socket,
      targets: [],
      proxyMetricsPort: 0,
      scrapeIntervalMs: 60_000,
      rateWindowMs: 30_000,
    },
  );
}

t.test("dashboardForwardAddress: localhost:15080 unless configured", async (t) => {
  t.same(dashboardForwardAddress({}), { host: "127.0.0.1", port: 15080 });
  t.same(dashboardForwardAddress({ AMBIT_DASHBOARD_HOST: "0.0.0.0", AMBIT_DASHBOARD_PORT: "9000" }), {
    host: "0.0.0.0",
    port: 9000,
  });
  t.same(dashboardForwardAddress({ AMBIT_DASHBOARD_PORT: "nope" }).port, 15080);
});

t.test("forward: page and events through the socket, across a controller restart", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ambit-dashfwd-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "dashboard.sock");
  let d = dashboard(socket);
  await d.start();
  t.teardown(() => d.close());
  const fwd = new DashboardForward({ socket, host: "127.0.0.1", port: 0 });
  const url = await fwd.start();
  t.teardown(() => fwd.close());
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  const page = await (await fetch(url)).text();
  t.match(page, /<title>ambit/, "the page through the forward");

  // The event stream: its first event, then the end when the controller goes.
  const sse = await new Promise<http.IncomingMessage>((r) => http.get(`${url}api/events`, r));
  t.equal(sse.headers["content-type"], "text/event-stream");
  const first = await new Promise<string>((r) => sse.once("data", (c: Buffer) => r(c.toString())));
  t.match(first, /event: graph/);
  const ended = new Promise<void>((r) => sse.once("close", () => r()));
  await d.close();
  await ended;
  t.pass("the stream ends when the controller goes");

  // Controller away: a request gets an error at once (the browser retries), not a hang.
  await t.rejects(fetch(url, { signal: AbortSignal.timeout(5000) }), "no controller: the connection fails");

  // A new controller on the same path (a killed one leaves its socket file behind).
  rmSync(socket, { force: true });
  const stale = net.createServer().listen(socket);
  await new Promise<void>((r) => stale.once("listening", () => r()));
  await new Promise<void>((r) => stale.close(() => r()));
  d = dashboard(socket);
  await d.start();
  const g = (await (await fetch(`${url}api/graph`)).json()) as { nodes: unknown[] };
  t.same(g.nodes, [], "served again through the same URL");
});

t.test("forward: a taken port falls back to a free one", async (t) => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => taken.close(() => r())));
  const port = (taken.address() as net.AddressInfo).port;
  const fwd = new DashboardForward({ socket: "/nonexistent", host: "127.0.0.1", port });
  const url = await fwd.start();
  t.teardown(() => fwd.close());
  t.notMatch(url, `:${port}/`, `not the taken port (${url})`);
});

// The dashboard in a real browser (Debian's chromium driven by
// playwright-core): a real controller serving examples/demo with its
// dashboard, a real waypoint carrying client → server requests (one of them
// denied by L7 policy) whose Istio metrics the dashboard scrapes. The graph
// shows the demo's services, the edge gets a non-zero rate, the denied call
// shows as an error on it, and the page survives a controller restart.
// Saves test/artifacts/dashboard.png.
import { existsSync, mkdirSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import t from "tap";
import { ControllerApp } from "../../controller/app.js";
import { parseControllerConfig } from "../../controller/config.js";
import { registry } from "../../core/telemetry/metrics.js";
import { Waypoint } from "../../waypoint/waypoint.js";
import { closeClientAgent, httpBackend, request } from "./waypoint-harness.js";

const CHROMIUM = process.env.AMBIT_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

t.test(
  "dashboard in chromium",
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (scripts/setup-system.sh installs it)` },
  async (t) => {
    t.setTimeout(120_000);
    t.teardown(closeClientAgent);
    const dir = await mkdtemp(join(tmpdir(), "ambit-dash-"));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await cp("examples/demo", join(dir, "demo"), { recursive: true });

    // The metrics the proxies export: this process's registry, where the waypoint below records.
    const metrics = http.createServer((_q, r) => {
      void registry
        .metrics()
        .then((text) => r.writeHead(200, { "content-type": registry.contentType }).end(text));
    });
    await new Promise<void>((r) => metrics.listen(0, "127.0.0.1", r));
    t.teardown(
      () =>
        new Promise((r) => {
          metrics.close(r);
          metrics.closeAllConnections();
        }),
    );

    const dashPort = await freePort();
    process.env.AMBIT_DASHBOARD_PORT = String(dashPort);
    process.env.AMBIT_DASHBOARD_TARGETS = `http://127.0.0.1:${(metrics.address() as AddressInfo).port}/metrics`;
    process.env.AMBIT_DASHBOARD_SCRAPE_MS = "300";
    const startController = async () => {
      const cfg = parseControllerConfig([
        ...["--config-dir", join(dir, "demo"), "--ca-dir", join(dir, "ca"), "--listen", "127.0.0.1"],
        ...["--xds-port", "0", "--secure-port=-1", "--admin-port", "0"],
      ]);
      if (cfg === "help") throw new Error("unexpected help");
      const app = new ControllerApp(cfg);
      await app.start();
      return app;
    };
    let app = await startController();
    t.teardown(() => app.close());

    // client → server.demo through a waypoint; DELETE is denied by policy.
    const backend = await httpBackend(t, "server");
    const wp = new Waypoint();
    await wp.start();
    wp.applyServices([
      {
        key: "demo/server.demo.svc.cluster.local",
        name: "server",
        namespace: "demo",
        hostname: "server.demo.svc.cluster.local",
        vips: ["10.96.0.20"],
        ports: [{ port: 80, protocol: "http" }],
        authz: [
          {
            name: "demo/no-delete",
            action: "DENY",
            rules: [{ from: [], to: [{ methods: ["DELETE"] }], when: [] }],
          },
        ],
        jwtRules: [],
        clusters: [
          {
            name: "demo/server.demo.svc.cluster.local:80",
            service: "demo/server.demo.svc.cluster.local",
            port: 80,
            protocol: "http",
            endpoints: [{ ip: "127.0.0.1", port: backend.port }],
          },
        ],
        routes: [],
      },
    ]);
    t.teardown(() => wp.close());
    const sockets = new Set<net.Socket>();
    const front = net.createServer((sock) => {
      sockets.add(sock);
      sock.once("close", () => sockets.delete(sock));
      wp.serveStream(sock, {
        dst: { ip: "10.96.0.20", port: 80 },
        peerIdentity: "spiffe://cluster.local/ns/demo/sa/client",
        sourceWorkload: "client",
        sourceNamespace: "demo",
      });
    });
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
    t.teardown(
      () =>
        new Promise((r) => {
          front.close(r);
          for (const s of sockets) s.destroy();
        }),
    );
    const frontPort = (front.address() as AddressInfo).port;
    const headers = { host: "server.demo" };

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    t.teardown(() => browser.close());
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${dashPort}/`);
    type G = {
      nodes: { id: string }[];
      edges: {
        id: string;
        rps: number;
        errorRate: number;
        totalErrors: number;
        mtls: boolean;
        waypoint: boolean;
      }[];
    };
    // Page-side expressions as strings: this project compiles without the DOM lib.
    const graph = () => page.evaluate("window.ambitGraph") as Promise<G | undefined>;
    const until = (expr: string, timeout = 10_000) => page.waitForFunction(expr, undefined, { timeout });
    const live = 'document.getElementById("conn").textContent === "live"';
    const EDGE = "demo/client->demo/svc:server";
    const edge = (cond: string) =>
      `(window.ambitGraph?.edges ?? []).some((e) => e.id === ${JSON.stringify(EDGE)} && ${cond})`;

    await until(live);
    await until(`(window.ambitGraph?.nodes ?? []).some((n) => n.id === "demo/svc:server")`);
    t.ok(
      (await graph())?.nodes.some((n) => n.id === "demo/svc:server"),
      "the demo's Service is a node",
    );

    // Traffic until the edge shows a rate (requests keep flowing while the page updates).
    let sending = true;
    const traffic = (async () => {
      while (sending) await request(frontPort, { path: "/", headers });
    })();
    await until(edge("e.rps > 0"));
    const e1 = (await graph())!.edges.find((e) => e.id === EDGE)!;
    t.ok(e1.rps > 0, `edge rate ${e1.rps} rps`);
    t.ok(e1.mtls, "mTLS edge");
    t.ok(e1.waypoint, "waypoint in the path");

    // A denied call shows as an error on the edge.
    t.equal((await request(frontPort, { method: "DELETE", path: "/x", headers })).status, 403);
    await until(edge("e.errorRate > 0"));
    t.ok(
      (await graph())!.edges.find((e) => e.id === EDGE)!.totalErrors >= 1,
      "denied call counted as an error",
    );
    const color = await page.evaluate(
      `window.cy.getElementById(${JSON.stringify(EDGE)}).style("line-color")`,
    );
    t.match(String(color), /198|c62828/, "the edge is drawn red");

    mkdirSync("test/artifacts", { recursive: true });
    await page.screenshot({ path: "test/artifacts/dashboard.png" });

    // Controller restart: the page reconnects by itself and keeps updating.
    await app.close();
    await until(`!(${live})`);
    app = await startController();
    await until(live, 15_000);
    await until(edge("e.rps > 0"));
    t.pass("live again after the controller restarted");
    sending = false;
    await traffic;
  },
);

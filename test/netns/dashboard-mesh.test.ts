// The dashboard of a real local mesh in a real browser: `ambit up` with
// examples/demo plus a `rogue` client that a DENY policy keeps away from the
// server, then Debian's chromium (playwright-core) on the URL `ambit
// dashboard` prints (the host's 127.0.0.1, forwarded by the supervisor into
// the control plane). The graph shows the demo's Service and workloads; the
// client → server edge gets a non-zero rate over mTLS from the ztunnels'
// metrics; the rogue's calls, denied by the server's ztunnel (L4), show as
// errors on their edge; the server's panel shows its identity and its
// certificate's expiry; the page survives a SIGKILL of the controller (the
// supervisor restarts it) and goes on updating; an invalid object written
// then shows in config health with its object and field. Saves a screenshot to
// test/artifacts/dashboard-mesh.png (AMBIT_UPDATE_SCREENSHOT=1: also
// docs/dashboard.png).
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import t from "tap";
import { readState } from "../../local/state.js";
import { ambit, testMeshDirs } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";

const CHROMIUM = process.env.AMBIT_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
];

// A second client with its own identity, calling the server twice a second; the policy denies it at L4.
const ROGUE = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: rogue, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rogue, namespace: demo, labels: {app: rogue}}
spec:
  replicas: 1
  selector: {matchLabels: {app: rogue}}
  template:
    metadata: {labels: {app: rogue}}
    spec:
      nodeName: node-1
      serviceAccountName: rogue
      containers:
        - name: loop
          image: ignored
          command:
            - node
            - -e
            - |
              const http = require("node:http");
              setInterval(() => {
                const req = http.get("http://server.demo/", { agent: false, timeout: 3000 }, (res) => res.resume());
                req.on("timeout", () => req.destroy());
                req.on("error", (e) => console.log("denied as expected? " + e.message));
              }, 500);
---
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-rogue, namespace: demo}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/rogue]}}]
`;

// An object the controller rejects: config health names it and the field.
const BAD = `apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: demo}
spec:
  action: MAYBE
`;

const CONTROLLER_PROCESS = "ambit-system/controller/controller";

t.test(
  "dashboard on ambit up: demo graph, live rate, L4 denial as an edge error, survives a controller restart",
  {
    skip: needsRoot || (existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (scripts/setup-system.sh)`),
    timeout: 240_000,
  },
  async (t) => {
    const started = Date.now();
    const { runDir, dir, meshId } = testMeshDirs(t, "dash");
    // The host port is any free one (15080 may be a user's mesh).
    process.env.AMBIT_DASHBOARD_PORT = "0";
    cpSync("examples/demo", dir, { recursive: true });
    writeFileSync(path.join(dir, "rogue.yaml"), ROGUE);

    const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
    t.equal(up.code, 0, "ambit up", { stderr: up.stderr });
    const dash = await ambit(runDir, ["dashboard", "--mesh-id", meshId]);
    const url = dash.stdout.trim();
    t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/, "ambit dashboard: a URL on this host's loopback");
    const status = await ambit(runDir, ["status", "--mesh-id", meshId]);
    t.match(status.stdout, `dashboard: ${url}`, "ambit status shows it too");
    t.comment(`mesh up in ${Date.now() - started} ms; dashboard ${url}`);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    t.teardown(() => browser.close());
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 760 } })).newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(url);

    // Page-side expressions as strings: the project compiles without the DOM lib.
    const until = (what: string, expr: string, timeout = 30_000) =>
      page.waitForFunction(expr, undefined, { timeout, polling: 200 }).then(
        () => true,
        (e: Error) => {
          t.fail(`${what}: ${e.message.split("\n")[0]}`);
          return false;
        },
      );
    type Edge = { id: string; rps: number; errorRate: number; totalDenied: number; mtls: boolean };
    const edges = () => page.evaluate("window.ambitGraph?.edges ?? []") as Promise<Edge[]>;
    const LIVE = 'document.getElementById("conn").textContent === "live"';
    const CLIENT = "demo/client->demo/svc:server";
    const ROGUE_EDGE = "demo/rogue->demo/svc:server";
    const edge = (id: string, cond: string) =>
      `(window.ambitGraph?.edges ?? []).some((e) => e.id === ${JSON.stringify(id)} && ${cond})`;

    t.ok(await until("live", LIVE, 10_000), "the page is live (server-sent events)");
    const nodes = ["demo/svc:server", "demo/client", "demo/server", "demo/rogue"];
    t.ok(
      await until(
        "demo nodes",
        `${JSON.stringify(nodes)}.every((id) => (window.ambitGraph?.nodes ?? []).some((n) => n.id === id))`,
      ),
      "the graph shows the demo's Service and workloads",
    );

    // The demo's client calls the server every second: a rate from the ztunnels' metrics, over mTLS.
    t.ok(await until("client edge rate", edge(CLIENT, "e.rps > 0 && e.mtls")), "client → server: rate > 0");
    const c = (await edges()).find((e) => e.id === CLIENT);
    t.ok(c && c.rps > 0 && c.errorRate === 0, `client → server ${c?.rps.toFixed(2)} conn/s, no errors`);

    // The rogue's calls are denied by the server's ztunnel: errors on their own edge, drawn red.
    t.ok(
      await until("rogue edge errors", edge(ROGUE_EDGE, "e.errorRate > 0 && e.totalDenied > 0")),
      "rogue → server: denied calls are errors on the edge",
    );
    const r = (await edges()).find((e) => e.id === ROGUE_EDGE);
    t.comment(`rogue edge: ${JSON.stringify(r)}`);
    const color = await page.evaluate(
      `window.cy.getElementById(${JSON.stringify(ROGUE_EDGE)}).style("line-color")`,
    );
    t.match(String(color), /198|c62828/, "the denied edge is drawn red");

    // The server's panel: identity, node, enrolment, certificate expiry, the DENY policy.
    await page.evaluate('window.cy.getElementById("demo/server").select().emit("tap"), true');
    t.ok(
      await until(
        "server panel",
        'document.getElementById("details").textContent.includes("expires")',
        15_000,
      ),
    );
    const details = (await page.evaluate('document.getElementById("details").textContent')) as string;
    t.match(details, "spiffe://cluster.local/ns/demo/sa/server", "identity");
    t.match(details, "node-2", "node");
    t.match(details, "captured (HBONE)", "enrolment");
    t.match(details, "demo/deny-rogue", "the policy that applies");
    t.ok(
      await until("health", 'document.getElementById("health").textContent.includes("no NACKs")', 10_000),
      "config health: no NACKs, no rejected objects",
    );

    mkdirSync("test/artifacts", { recursive: true });
    const shot = "test/artifacts/dashboard-mesh.png";
    await page.screenshot({ path: shot });
    t.ok(statSync(shot).size < 300_000, `screenshot ${statSync(shot).size} bytes`);
    if (process.env.AMBIT_UPDATE_SCREENSHOT === "1") copyFileSync(shot, "docs/dashboard.png");

    // SIGKILL the controller: the supervisor restarts it; the same page reconnects and keeps updating.
    const pidOf = () => readState(meshId)?.processes.find((p) => p.name === CONTROLLER_PROCESS)?.pid;
    const oldPid = pidOf();
    t.ok(oldPid, "the controller's pid from the state file");
    const beforeAt = (await page.evaluate("window.ambitGraph.at")) as string;
    const killedAt = Date.now();
    process.kill(oldPid!, "SIGKILL");
    // Where the time goes (diagnostics): a new process, then its dashboard answering through the forward.
    let done = false;
    t.teardown(() => {
      done = true;
    });
    const milestones = (async () => {
      let restarted = 0;
      while (Date.now() - killedAt < 90_000 && !done) {
        if (!restarted && pidOf() !== oldPid && pidOf()) restarted = Date.now() - killedAt;
        const ok = await fetch(`${url}api/health`, { signal: AbortSignal.timeout(1000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (ok)
          return `new controller process after ${restarted} ms, its dashboard answered after ${Date.now() - killedAt} ms`;
        await new Promise((r) => setTimeout(r, 250));
      }
      return "no answer in 90 s";
    })();
    t.ok(await until("reconnecting", `!(${LIVE})`, 10_000), "the page notices the controller is gone");
    // A loaded 2-core machine takes half a minute to start the controller's process again.
    t.ok(await until("live again", LIVE, 75_000), "live again without a reload");
    t.comment(`live again ${Date.now() - killedAt} ms after the kill; ${await milestones}`);
    t.not(pidOf(), oldPid, "a new controller process");
    t.ok(
      await until(
        "rate after restart",
        `window.ambitGraph.at > ${JSON.stringify(beforeAt)} && ${edge(CLIENT, "e.rps > 0")} && ${edge(ROGUE_EDGE, "e.errorRate > 0")}`,
        45_000,
      ),
      "rates and errors again from the restarted controller's scrapes",
    );
    t.comment(`back with rates ${Date.now() - killedAt} ms after the kill; total ${Date.now() - started} ms`);

    writeFileSync(path.join(dir, "zz-broken.yaml"), BAD);
    t.ok(
      await until(
        "rejected object",
        'document.getElementById("health").textContent.includes("demo/broken field spec.action")',
        30_000,
      ),
      "config health: the rejected object with its field, live",
    );
    t.same(pageErrors, [], "no script errors on the page");
  },
);

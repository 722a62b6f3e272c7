// Waypoint faults with HTTP traffic at a constant rate and keep-alive
// connections open (client on node-1 → Service `web` through the waypoint):
// - a backend that resets every request joins: the route's retries and the
//   TrafficPolicy's outlier detection behave as configured (every request
//   answered 200, retries and the ejection counted in the waypoint's metrics);
// - the waypoint stopped (SIGSTOP) then continued: requests fail by timeout
//   while it is stopped, the open connections stall without dropping, and
//   all recover after SIGCONT;
// - the waypoint killed (SIGKILL, restarted by the supervisor): new
//   connections fail fast while it is down, the failure is in the client
//   ztunnel's metrics and access log, and traffic resumes after the restart.
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { type FaultMesh, metricValue, startFaultMesh } from "./fault-fixture.js";
import { needsRoot } from "./netns-fixture.js";

const HTTP_GOOD = `require("http").createServer((q, s) => s.end("ok\\n")).listen(8080)`;
// Reads the request, then resets the connection: what a crashing backend looks like.
const HTTP_RESET = `require("http").createServer((q, s) => q.socket.resetAndDestroy()).listen(8080)`;

function webPod(name: string, cmd: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: mesh, labels: {app: web}}
spec:
  nodeName: node-2
  serviceAccountName: web
  containers:
    - name: http
      image: ignored
      command: [node, -e, ${JSON.stringify(cmd)}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {tcpSocket: {port: 8080}}
---
`;
}

const FILES = {
  "waypoint.yaml": `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: mesh}
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
`,
  "web.yaml": `apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: mesh}
---
${webPod("web-good", HTTP_GOOD)}apiVersion: v1
kind: Service
metadata: {name: web, namespace: mesh, labels: {ambit.dev/use-waypoint: waypoint}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
    - backendRefs: [{name: web, port: 80}]
      retry: {attempts: 2, codes: [503], backoff: 10ms}
---
apiVersion: ambit.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: mesh}
spec:
  targetRefs: [{kind: Service, name: web}]
  outlierDetection: {consecutiveGatewayErrors: 2, consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 300s, maxEjectionPercent: 50}
`,
};

async function waypointMetrics(mesh: FaultMesh, pod: string): Promise<string> {
  const r = await mesh.cli([
    "exec",
    pod,
    "--",
    "node",
    "-e",
    "fetch('http://127.0.0.1:15020/metrics').then((r) => r.text()).then((x) => process.stdout.write(x))",
  ]);
  if (!r.stdout.includes("# HELP"))
    throw new Error(`no metrics from ${pod}: ${r.code} ${r.stderr.slice(-500)}`);
  return r.stdout;
}

t.test(
  "waypoint faults: resetting backend retried and ejected, waypoint stopped, waypoint killed",
  { skip: needsRoot, timeout: 280_000 },
  async (t) => {
    const started = Date.now();
    const mesh = await startFaultMesh(t, { files: FILES });
    t.comment(`mesh up in ${Date.now() - started} ms`);
    const status = JSON.parse((await mesh.cli(["status", "--json"])).stdout) as { pods: { key: string }[] };
    const wpKey = status.pods.find((p) => p.key.startsWith("mesh/waypoint"))?.key;
    t.ok(wpKey, `the waypoint runs as a pod (${wpKey})`);
    const wpComponent = `${wpKey}/waypoint`;

    const http = { host: "web.mesh", port: 80, http: true, timeoutMs: 3000 };
    const tr = await mesh.traffic(t, "mesh/client", { ...http, long: 5, rate: 10 });
    // Warm-up with web-good alone: the first connections through a new waypoint set up TLS
    // and certificates (seconds on a loaded 2-core machine), and timeouts then would count
    // against web-good in outlier detection.
    await tr.until(() => tr.lastShorts(10, true), 60_000, "10 requests in a row through the waypoint");
    t.comment(`warm-up: ${JSON.stringify(tr.shortsSince(0))}`);

    // ---- a backend that resets every request joins: retried, then ejected ----
    const badAt = Date.now();
    fs.writeFileSync(path.join(mesh.dir, "web-bad.yaml"), webPod("web-bad", HTTP_RESET));
    let ejected = "";
    while (metricValue(ejected, "ambit_waypoint_ejections_total") < 1 && Date.now() - badAt < 90_000) {
      ejected = await waypointMetrics(mesh, wpKey!); // polled: the waypoint's state is in another process
    }
    t.comment(`web-bad ejected ${Date.now() - badAt} ms after its file was written`);
    await tr.until(() => tr.shortsSince(badAt).ok >= 30, 60_000, "30 requests after web-bad joined");
    const first = tr.shortsSince(badAt);
    t.equal(
      first.failed,
      0,
      `every request answered 200 although web-bad resets each one: ${JSON.stringify(first)}`,
    );
    const m1 = await waypointMetrics(mesh, wpKey!);
    t.ok(metricValue(m1, "ambit_waypoint_retries_total") > 0, "the retries are counted");
    t.equal(
      metricValue(m1, "ambit_waypoint_ejections_total"),
      1,
      "web-bad is ejected once (baseEjectionTime 300 s)",
    );
    const retriesAfterEjection = metricValue(m1, "ambit_waypoint_retries_total");
    const settledFrom = Date.now();
    await tr.until(() => tr.shortsSince(settledFrom).ok >= 30, 30_000, "30 more requests");
    const m2 = await waypointMetrics(mesh, wpKey!);
    t.equal(
      metricValue(m2, "ambit_waypoint_retries_total"),
      retriesAfterEjection,
      "no more retries once the bad endpoint is ejected",
    );

    // ---- the waypoint stopped: timeouts, open connections stall but stay ----
    const wpPid = mesh.pid(wpComponent);
    t.ok(wpPid, "the waypoint's pid is known");
    const dropsBefore = tr.drops().length;
    const stoppedAt = Date.now();
    process.kill(wpPid!, "SIGSTOP");
    try {
      await tr.until(
        () => tr.shortsSince(stoppedAt).failed >= 10,
        30_000,
        "requests to fail while the waypoint is stopped",
      );
    } finally {
      process.kill(wpPid!, "SIGCONT");
    }
    const contAt = Date.now();
    const whileStopped = tr.shortsSince(stoppedAt, contAt);
    t.comment(`waypoint stopped ${contAt - stoppedAt} ms: ${JSON.stringify(whileStopped)}`);
    t.ok(
      Object.keys(whileStopped.errors).every((e) => /timeout|ECONNRESET|closed/.test(e)),
      "requests fail (bounded by timeouts), they are not answered by anything else",
    );
    await tr.until(() => tr.lastShorts(10, true), 30_000, "requests to succeed after SIGCONT");
    t.comment(`recovered ${Date.now() - contAt} ms after SIGCONT`);
    t.same(tr.drops().slice(dropsBefore), [], "keep-alive connections stalled but none dropped");

    // ---- the waypoint killed ----
    const n1Before = await mesh.ztunnelMetrics("node-1");
    const killedAt = Date.now();
    process.kill(wpPid!, "SIGKILL");
    await tr.until(
      () => tr.shortsSince(killedAt).failed >= 5,
      30_000,
      "requests to fail while the waypoint is down",
    );
    const newPid = await mesh.restarted(wpComponent, wpPid!);
    t.comment(`waypoint back (pid ${newPid}) ${Date.now() - killedAt} ms after the kill`);
    await tr.until(() => tr.lastShorts(10, true), 60_000, "requests to succeed after the restart");
    const recoveredAt = Date.now();
    const outage = tr.shortsSince(killedAt, recoveredAt);
    t.comment(`waypoint killed: user-visible outage ${recoveredAt - killedAt} ms, ${JSON.stringify(outage)}`);
    const n1After = await mesh.ztunnelMetrics("node-1");
    t.ok(
      metricValue(n1After, "ambit_ztunnel_connect_failures_total", { direction: "outbound" }) >
        metricValue(n1Before, "ambit_ztunnel_connect_failures_total", { direction: "outbound" }),
      "the client's ztunnel counts the failed connections to the waypoint",
    );
    const access = mesh
      .log("ztunnel-node-1")
      .split("\n")
      .filter(
        (l) =>
          l.includes('"ztunnel.access"') && l.includes("web.mesh.svc") && l.includes('"connection refused"'),
      );
    t.ok(access.length > 0, "... and its access log has lines for them");
    const reasons = [...new Set(access.map((l) => (JSON.parse(l) as { reason: string }).reason))];
    t.comment(`access log reasons while the waypoint was down: ${reasons.join(", ")}`);
    t.notOk(
      access.some((l) => !l.includes('"reason":"waypoint_unresolved"') && !l.includes('"reason":"hbone')),
      "every refusal is the waypoint's (unresolved or its HBONE failing): the waypoint is never bypassed",
    );
    const report = await tr.stop();
    t.ok(report, "the traffic generator ended cleanly");
    t.comment(`total ${Date.now() - started} ms`);
  },
);

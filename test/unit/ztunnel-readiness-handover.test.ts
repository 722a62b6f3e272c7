// During a surge rollout two ztunnels run on one node and both want the
// readiness port (15021, host network). The successor retries the port; the
// draining one gives it up when its drain starts, so the kubelet's probe
// reaches the successor and reflects whether the successor is ready, never
// the old process's answer. Two real admin servers on one loopback port.
import http from "node:http";
import net from "node:net";
import t from "tap";
import type { ZtunnelApp } from "../../ztunnel/app.js";
import { ZtunnelAdmin } from "../../ztunnel/admin.js";

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The admin reads only its config and readiness from the app. */
function appStub(readinessPort: number, ready: () => boolean): ZtunnelApp {
  const cfg = { adminHost: "127.0.0.1", adminPort: -1, metricsPort: -1, readinessPort };
  return { cfg, isReady: ready } as unknown as ZtunnelApp;
}

function probe(port: number): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz/ready", agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > end) throw new Error(`not reached in ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test("the draining ztunnel hands the readiness port to its successor", async (t) => {
  const port = await freePort();
  const old = new ZtunnelAdmin(appStub(port, () => true));
  await old.start();
  t.teardown(() => old.close());
  let successorReady = false;
  const successor = new ZtunnelAdmin(appStub(port, () => successorReady));
  await successor.start(); // the port is taken: it retries in the background
  t.teardown(() => successor.close());

  t.equal((await probe(port)).code, 200, "before the drain the old ztunnel answers (ready)");
  await old.releaseReadiness();
  const seen = await until(() => probe(port), (r) => r.code === 503, 10_000);
  t.equal(seen.body, "not ready\n", "then the probe reaches the successor, which is not ready yet");
  successorReady = true;
  t.equal((await probe(port)).code, 200, "and turns ready with the successor");
  await old.releaseReadiness(); // idempotent
});

t.test("a successor still waiting for the port stops trying once it drains itself", async (t) => {
  const port = await freePort();
  const holder = net.createServer().listen(port, "127.0.0.1");
  await new Promise((r) => holder.once("listening", r));
  const admin = new ZtunnelAdmin(appStub(port, () => true));
  await admin.start();
  t.teardown(() => admin.close());
  await admin.releaseReadiness();
  await new Promise((r) => holder.close(r));
  // Had it kept retrying, it would bind the free port within its 1 s retry.
  await new Promise((r) => setTimeout(r, 1500));
  const taken = await probe(port).then(
    () => true,
    () => false,
  );
  t.equal(taken, false, "the released port stays free");
});

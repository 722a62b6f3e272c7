// The ztunnel's CertManager against a real CA over real gRPC: one CSR for
// many concurrent callers, rotation at half-life, and never an expired
// certificate, even while the CA is down.
import { X509Certificate } from "node:crypto";
import t from "tap";
import { caMetrics } from "../../controller/ca/service.js";
import { verifyChain } from "../../core/identity/x509.js";
import { registry } from "../../core/telemetry/metrics.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";
import { type CertBundle, CertManager } from "../../ztunnel/certs/manager.js";
import { counterValue, NODE1_TOKEN, nextEvent, type RunningCa, startCa, TD, tempDir } from "./ca-harness.js";

const CLIENT = { trustDomain: TD, namespace: "demo", serviceAccount: "client" };
const CLIENT_URI = `spiffe://${TD}/ns/demo/sa/client`;

async function setup(
  t: { teardown(fn: () => unknown): void },
  ttlSeconds: number,
): Promise<{ running: RunningCa; manager: CertManager }> {
  const running = await startCa({ dir: await tempDir(t) });
  t.teardown(() => running.close());
  const client = new CaClient({ address: running.address, token: NODE1_TOKEN, ttlSeconds, timeoutMs: 2000 });
  t.teardown(() => client.close());
  const manager = new CertManager({ client, trustDomain: TD, backoff: { initialMs: 50, maxMs: 200 } });
  manager.start();
  t.teardown(() => manager.close());
  return { running, manager };
}

t.test("concurrent gets share one CSR; later gets use the cache", async (t) => {
  const { running, manager } = await setup(t, 3600);
  const before = await counterValue(caMetrics.signed);
  const all = await Promise.all(Array.from({ length: 20 }, () => manager.get(CLIENT)));
  t.equal(await counterValue(caMetrics.signed), before + 1, "one certificate signed for 20 callers");
  t.ok(
    all.every((b) => b === all[0]),
    "all got the same bundle",
  );
  const b = all[0] as CertBundle;
  t.equal(b.identity, CLIENT_URI);
  t.ok(verifyChain(b.certChainPem, b.rootsPem).ok);
  t.equal(b.rootsPem[0]?.trim(), running.ca.rootPem.trim());
  t.ok(b.secureContext, "TLS context built");
  t.equal(await manager.get(CLIENT_URI), b, "cached, by URI too");
  t.equal(await counterValue(caMetrics.signed), before + 1);

  const [entry] = manager.list();
  t.match(entry, { identity: CLIENT_URI, state: "valid", failures: 0, notAfter: b.notAfter.toISOString() });

  const metric = await registry.getSingleMetric("ambit_cert_expiry_seconds")?.get();
  const v = metric?.values.find((x) => x.labels.identity === CLIENT_URI)?.value ?? -1;
  t.ok(v > 3500 && v <= 3600, `expiry metric in seconds (${v})`);

  manager.forget(CLIENT);
  t.same(manager.list(), [], "forgotten");
  const again = await manager.get(CLIENT);
  t.not(again, b, "a new certificate after forget");
  t.equal(await counterValue(caMetrics.signed), before + 2);
});

t.test("refused identities are not served, and the manager keeps asking", async (t) => {
  const { manager } = await setup(t, 3600);
  await t.rejects(manager.get({ trustDomain: "other.td", namespace: "demo", serviceAccount: "client" }), {
    code: "INVALID_FIELD",
  });
  // demo/server runs on node-2; node-1's manager cannot get it (PERMISSION_DENIED, retried).
  const pending = manager.get({ trustDomain: TD, namespace: "demo", serviceAccount: "server" });
  const [, err] = await nextEvent<[string, Error, number]>(manager, "fetchError");
  t.match(err.message, /not running on node node-1/);
  t.equal(manager.list()[0]?.state, "pending");
  manager.close();
  await t.rejects(pending, { message: /closed/ }, "close() ends the wait");
});

t.test("rotates at half-life", async (t) => {
  const { manager } = await setup(t, 4);
  const first = await manager.get(CLIENT);
  const life = first.notAfter.getTime() - Date.now();
  t.ok(life > 0 && life <= 4000, `short-lived (${life} ms)`);
  const [next, prev] = await nextEvent<[CertBundle, CertBundle]>(manager, "rotated");
  const rotatedAt = Date.now();
  t.equal(prev, first);
  t.ok(rotatedAt >= first.rotateAt.getTime(), "not before half-life");
  t.ok(rotatedAt < first.notAfter.getTime(), "before expiry");
  t.ok(next.notAfter.getTime() > first.notAfter.getTime(), "a later expiry");
  t.not(next.keyPem, first.keyPem, "a new key");
  t.not(
    new X509Certificate(next.certChainPem[0] as string).serialNumber,
    new X509Certificate(first.certChainPem[0] as string).serialNumber,
  );
  t.equal(await manager.get(CLIENT), next, "gets now return the new one");
});

t.test(
  "never serves an expired certificate: with the CA down, get waits, then resolves when the CA is back",
  async (t) => {
    const { running, manager } = await setup(t, 2);
    const first = await manager.get(CLIENT);
    // The manager's timers are unref'd (a ztunnel's listeners keep it alive);
    // with the CA killed nothing else would, so this stands in for them.
    const listenersStandIn = setInterval(() => {}, 60_000);
    t.teardown(() => clearInterval(listenersStandIn));
    running.kill();
    const [expiredId] = await nextEvent<[string]>(manager, "expired");
    t.equal(expiredId, CLIENT_URI);
    t.ok(Date.now() >= first.notAfter.getTime());
    t.equal(manager.list()[0]?.state, "expired");

    let settled = false;
    const waiting = manager.get(CLIENT).finally(() => {
      settled = true;
    });
    // Two more failed attempts while the caller waits: it is waiting on the CA, not served the old one.
    await nextEvent(manager, "fetchError");
    await nextEvent(manager, "fetchError");
    t.notOk(settled, "still waiting while the CA is down");

    await running.revive();
    const fresh = await waiting;
    t.not(fresh, first);
    t.ok(fresh.notAfter.getTime() > Date.now(), "valid");
    t.ok(verifyChain(fresh.certChainPem, fresh.rootsPem).ok);
    t.equal(manager.list()[0]?.state, "valid");
    t.equal(manager.list()[0]?.failures, 0);
  },
);

// A certificate near its end while the CA is down (the controller killed):
// the ztunnel keeps handing out the unexpired one, never the expired one
// (callers wait: fail closed), and says so with counters and a log line;
// once the CA is back the waiters get a fresh certificate.
import { Writable } from "node:stream";
import pino from "pino";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { CaClient } from "../../ztunnel/certs/ca-client.js";
import { CertManager } from "../../ztunnel/certs/manager.js";
import { NODE1_TOKEN, nextEvent, startCa, TD, tempDir } from "./ca-harness.js";

const CLIENT = { trustDomain: TD, namespace: "demo", serviceAccount: "client" };

async function metric(name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  return ((await m?.get())?.values ?? []).reduce((a, v) => a + v.value, 0);
}

t.test(
  "CA down across a certificate's end: kept while valid, refused once expired, counted and logged",
  async (t) => {
    const running = await startCa({ dir: await tempDir(t) });
    t.teardown(() => running.close());
    const client = new CaClient({
      address: running.address,
      token: NODE1_TOKEN,
      ttlSeconds: 3,
      timeoutMs: 1000,
    });
    t.teardown(() => client.close());
    const lines: { msg: string; identity?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)) as { msg: string });
        cb();
      },
    });
    const manager = new CertManager({
      client,
      trustDomain: TD,
      backoff: { initialMs: 100, maxMs: 400 },
      logger: pino({ level: "info" }, sink),
    });
    manager.start();
    t.teardown(() => manager.close());
    // The manager's timers are unref'd (a ztunnel's listeners keep it alive); this stands in for them.
    const keepAlive = setInterval(() => {}, 60_000);
    t.teardown(() => clearInterval(keepAlive));

    const first = await manager.get(CLIENT);
    const expiredBefore = await metric("ambit_cert_expired_total");
    const refusedBefore = await metric("ambit_cert_expired_refusals_total");
    running.kill();

    // The rotation at half-life fails (CA down): the unexpired certificate is still handed out.
    await nextEvent(manager, "fetchError");
    t.ok(Date.now() < first.notAfter.getTime(), "a renewal failed before the end");
    t.equal(
      await manager.get(CLIENT),
      first,
      "the unexpired certificate is still served while the CA is down",
    );

    await nextEvent(manager, "expired");
    t.equal(
      await metric("ambit_cert_expired_total"),
      expiredBefore + 1,
      "ambit_cert_expired_total counts it",
    );
    const line = lines.find((l) => /expired before the CA renewed it/.test(l.msg));
    t.ok(line, "a log line says the certificate expired and connections wait (fail closed)");
    t.equal(line?.identity, `spiffe://${TD}/ns/demo/sa/client`, "... naming the identity");

    let got: unknown;
    const waiting = manager.get(CLIENT).then((b) => {
      got = b;
      return b;
    });
    await nextEvent(manager, "fetchError");
    t.equal(got, undefined, "an expired certificate is not handed out: the caller waits");
    t.equal(await metric("ambit_cert_expired_refusals_total"), refusedBefore + 1, "the refusal is counted");

    await running.revive();
    const fresh = await waiting;
    t.not(fresh, first);
    t.ok(fresh.notAfter.getTime() > Date.now(), "the waiter gets a fresh certificate once the CA is back");
  },
);

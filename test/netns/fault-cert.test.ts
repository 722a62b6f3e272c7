// The CA unavailable across the end of the workload certificates (short
// lifetime via AMBIT_CERT_TTL; the controller, which is the CA, stopped with
// SIGSTOP so that it neither answers nor restarts): the ztunnels keep using
// their certificates while they are valid, never present an expired one
// (a TLS probe of the server's HBONE port from outside the mesh sees a valid
// certificate or no handshake at all), count and log the expiry, fail new
// connections closed, and recover once the CA answers again.
import t from "tap";
import { metricValue, startFaultMesh } from "./fault-fixture.js";
import { needsRoot } from "./netns-fixture.js";

const TTL = 24;

/** Connects to HOST:15008 without verifying, prints the presented certificate's end (or the error). */
const TLS_PROBE = `
const tls = require("tls");
const s = tls.connect({ host: process.argv[1], port: 15008, rejectUnauthorized: false, ALPNProtocols: ["h2"], minVersion: "TLSv1.3" });
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
s.setTimeout(3000, () => done({ error: "timeout" }));
s.on("secureConnect", () => { const c = s.getPeerCertificate(); done({ validTo: c && c.valid_to }); });
s.on("error", (e) => done({ error: e.code || e.message }));
`;

t.test(
  "CA down across certificate expiry: valid certificates kept, expired never presented, fail closed, recover",
  { skip: needsRoot, timeout: 280_000 },
  async (t) => {
    const started = Date.now();
    const mesh = await startFaultMesh(t, { env: { AMBIT_CERT_TTL: String(TTL) } });
    t.comment(`mesh up in ${Date.now() - started} ms (certificate lifetime ${TTL} s)`);
    const server = await mesh.pod("mesh/server");
    const probe = async (): Promise<{ validTo?: string; error?: string }> => {
      const r = await mesh.cli(["exec", "plain/outsider", "--", "node", "-e", TLS_PROBE, server.ip]);
      return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { validTo?: string; error?: string };
    };
    const before = await probe();
    t.ok(
      before.validTo,
      `the server's ztunnel presents a certificate before the fault (valid to ${before.validTo})`,
    );

    const tr = await mesh.traffic(t, "mesh/client", { host: "server.mesh", port: 80, long: 5, rate: 5 });
    const ctl = mesh.pid("controller")!;
    const stoppedAt = Date.now();
    process.kill(ctl, "SIGSTOP");
    t.teardown(() => {
      try {
        process.kill(ctl, "SIGCONT");
      } catch {
        // gone
      }
    });

    // Wait for a certificate to run out (at most TTL seconds after the stop).
    let expiredOn: string | undefined;
    const probes: { at: number; validTo?: string; error?: string }[] = [];
    while (!expiredOn && Date.now() - stoppedAt < (TTL + 30) * 1000) {
      for (const node of ["node-1", "node-2"]) {
        const m = await mesh.ztunnelMetrics(node);
        if (metricValue(m, "ambit_cert_expired_total") > 0) expiredOn = node;
      }
      probes.push({ at: Date.now(), ...(await probe()) });
    }
    t.ok(expiredOn, `a certificate expired while the CA was down (first on ${expiredOn})`);
    const expiredAt = Date.now();
    // With the certificates expired: new connections fail closed.
    await tr.until(
      () => tr.lastShorts(5, false),
      30_000,
      "new connections to fail once certificates expired",
    );
    for (let i = 0; i < 3; i++) probes.push({ at: Date.now(), ...(await probe()) });
    const presented = probes.filter((p) => p.validTo);
    t.ok(
      presented.every((p) => new Date(p.validTo!).getTime() > p.at - 1000),
      `no expired certificate was ever presented (${presented.length} handshakes saw a valid one, ${probes.length - presented.length} none)`,
    );
    t.ok(
      probes.filter((p) => p.at > expiredAt).every((p) => !p.validTo),
      "after the expiry the server's HBONE port completes no handshake",
    );
    const servedWhileValid = tr.shortsSince(stoppedAt, expiredAt - TTL * 100);
    t.ok(
      servedWhileValid.ok > 0,
      `while the certificates were valid, traffic was served: ${JSON.stringify(servedWhileValid)}`,
    );
    const log = mesh.log(`ztunnel-${expiredOn}`);
    t.match(log, /certificate expired before the CA renewed it/, "the ztunnel logs the expiry");
    const m = await mesh.ztunnelMetrics(expiredOn!);
    t.ok(
      metricValue(m, "ambit_cert_expired_refusals_total") > 0,
      "refusals to use the expired certificate are counted",
    );

    // The CA answers again: fresh certificates, traffic resumes.
    const contAt = Date.now();
    process.kill(ctl, "SIGCONT");
    await tr.until(() => tr.lastShorts(5, true), 60_000, "new connections to succeed once the CA is back");
    t.comment(`CA down ${contAt - stoppedAt} ms; traffic back ${Date.now() - contAt} ms after SIGCONT`);
    const after = await probe();
    t.ok(
      after.validTo && new Date(after.validTo).getTime() > Date.now(),
      `a fresh certificate is presented (valid to ${after.validTo})`,
    );
    await tr.stop();
    t.comment(`long-lived connections across the expiry: ${tr.drops().length} of 5 ended`);
    t.comment(`total ${Date.now() - started} ms`);
  },
);

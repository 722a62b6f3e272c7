// Controller faults on a running two-node mesh, with traffic at a constant
// rate and long-lived connections open the whole time:
// - the controller SIGKILLed (the supervisor restarts it): the ztunnels keep
//   serving their last good state, reconnect, and resync; a policy changed
//   from ALLOW to DENY while the controller was down applies on resync; a
//   DENY that existed before stays enforced throughout; no connection drops;
// - an invalid object: rejected with the object and field named (`ambit
//   status`), the last good version stays in force, also across another
//   controller restart.
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { metricValue, startFaultMesh } from "./fault-fixture.js";
import { needsRoot } from "./netns-fixture.js";

const SA = (name: string) => `cluster.local/ns/mesh/sa/${name}`;

function policy(name: string, action: string, principals: string[]): string {
  return `apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: mesh}
spec:
  selector: {matchLabels: {app: server}}
  action: ${action}
  rules:
    - from: [{source: {principals: [${principals.join(", ")}]}}]
`;
}

t.test(
  "controller killed and restarted; invalid config: last good state served, no drop, no stale deny",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const started = Date.now();
    const mesh = await startFaultMesh(t, {
      clients: ["client", "probe", "blocked"],
      files: {
        "deny-blocked.yaml": policy("deny-blocked", "DENY", [SA("blocked")]),
        // ALLOW for all three: `blocked` is kept out by the DENY alone.
        "probe-rule.yaml": policy("probe-rule", "ALLOW", [SA("client"), SA("probe"), SA("blocked")]),
      },
    });
    t.comment(`mesh up in ${Date.now() - started} ms`);
    const target = { host: "server.mesh", port: 80 };
    const client = await mesh.traffic(t, "mesh/client", { ...target, long: 10, rate: 10 });
    const probe = await mesh.traffic(t, "mesh/probe", { ...target, long: 0, rate: 5 });
    const blocked = await mesh.traffic(t, "mesh/blocked", { ...target, long: 0, rate: 5 });
    t.ok(probe.lastShorts(3, true), "probe is allowed before the fault");
    t.equal(blocked.shortsSince(0).ok, 0, "blocked is denied before the fault");

    const metricsBefore = {
      n1: await mesh.ztunnelMetrics("node-1"),
      n2: await mesh.ztunnelMetrics("node-2"),
    };

    // ---- SIGKILL the controller; change ALLOW → DENY while it is down ----
    const oldPid = mesh.pid("controller");
    t.ok(oldPid, "the controller runs");
    const killedAt = Date.now();
    process.kill(oldPid!, "SIGKILL");
    fs.writeFileSync(path.join(mesh.dir, "probe-rule.yaml"), policy("probe-rule", "DENY", [SA("probe")]));
    const newPid = await mesh.restarted("controller", oldPid!);
    const backAt = Date.now();
    await mesh.resynced(["node-1", "node-2"]);
    t.comment(`ztunnels in sync ${Date.now() - backAt} ms after the controller was ready`);
    t.comment(`controller back (pid ${newPid}) ${backAt - killedAt} ms after the kill`);
    const served = probe.shortsSince(killedAt, backAt);
    t.ok(
      served.ok > 0,
      `while the controller was down, the last good state (probe allowed) was served: ${JSON.stringify(served)}`,
    );
    t.equal(served.failed, 0, "... and nothing failed for lack of a controller");

    await probe.until(() => probe.lastShorts(5, false), 30_000, "the DENY to apply after resync");
    const deniedAt = Date.now();
    t.comment(
      `the DENY written while the controller was down applied ${deniedAt - backAt} ms after it came back`,
    );
    t.ok(client.lastShorts(5, true), "client (still allowed) keeps working after the resync");

    const n1 = await mesh.ztunnelMetrics("node-1");
    const n2 = await mesh.ztunnelMetrics("node-2");
    for (const [node, before, now] of [
      ["node-1", metricsBefore.n1, n1],
      ["node-2", metricsBefore.n2, n2],
    ] as const) {
      t.ok(
        metricValue(now, "ambit_xds_client_reconnects_total") >
          metricValue(before, "ambit_xds_client_reconnects_total"),
        `${node}'s ztunnel counted its xDS reconnect`,
      );
      t.equal(metricValue(now, "ambit_xds_client_connected"), 1, `${node}'s ztunnel is connected again`);
    }
    t.match(
      mesh.log("ztunnel-node-2"),
      /xDS disconnected; keeping last good state/,
      "the ztunnel logs the disconnect",
    );
    t.ok(
      metricValue(n2, "ambit_authz_denials_total") >
        metricValue(metricsBefore.n2, "ambit_authz_denials_total"),
      "the new denials are counted by the server's ztunnel",
    );

    // ---- an invalid object: named, rejected, last good version in force ----
    const invalidAt = Date.now();
    fs.writeFileSync(path.join(mesh.dir, "probe-rule.yaml"), policy("probe-rule", "DENYY", [SA("probe")]));
    let named: { message: string; field?: string } | undefined;
    for (let i = 0; i < 60 && !named; i++) {
      const r = await mesh.cli(["status", "--json"]);
      const errs = (JSON.parse(r.stdout) as { errors: { message: string; field?: string }[] }).errors;
      named = errs.find((e) => /probe-rule/.test(e.message));
      if (!named) await new Promise((r) => setTimeout(r, 500)); // the controller polls the directory
    }
    t.ok(named, "ambit status reports the invalid object");
    t.match(named?.message ?? "", /probe-rule/, "... naming the object");
    t.match(`${named?.field ?? ""} ${named?.message ?? ""}`, /spec\.action/, "... and the field");
    const text = await mesh.cli(["status"]);
    t.match(text.stdout, /error: .*probe-rule.*spec\.action/, "the text form names them too");

    // The same invalid file across a controller restart: still the last good version.
    const pid2 = mesh.pid("controller")!;
    process.kill(pid2, "SIGKILL");
    const restartAt = Date.now();
    await mesh.restarted("controller", pid2);
    await mesh.resynced(["node-1", "node-2"]);
    const settleFrom = Date.now();
    t.comment(`second restart: ztunnels in sync ${settleFrom - restartAt} ms after the kill`);
    await probe.until(
      () => probe.shortsSince(settleFrom).ok + probe.shortsSince(settleFrom).failed >= 10,
      30_000,
      "10 probes after the resync",
    );
    const afterInvalid = probe.shortsSince(invalidAt);
    t.equal(
      afterInvalid.ok,
      0,
      `the last good DENY stays in force (also after a restart): ${JSON.stringify(afterInvalid)}`,
    );

    // ---- the user's view over the whole run ----
    const report = await client.stop();
    await probe.stop();
    await blocked.stop();
    const all = client.shortsSince(0);
    t.equal(all.failed, 0, `every new connection of client succeeded (${all.ok} of ${all.ok + all.failed})`);
    t.same(client.drops(), [], "no long-lived connection dropped");
    t.ok(
      report?.longs?.every((l) => l.open && l.echoed === l.sent),
      "every long-lived connection open at the end, every ping echoed",
    );
    t.comment(`longest echo wait on a long-lived connection: ${client.maxStallMs(0)} ms`);
    t.equal(
      blocked.shortsSince(0).ok,
      0,
      `the DENY of 'blocked' held throughout (${blocked.shortsSince(0).failed} refused)`,
    );
    t.comment(`total ${Date.now() - started} ms`);
  },
);

// A ztunnel SIGKILLed on a running mesh (the supervisor restarts it), with
// traffic at a constant rate and long-lived connections open:
// - the server's node: while it is down, the STRICT server refuses
//   everything (the unenrolled outsider never reaches the application, not
//   even with the capture's listener gone); the long-lived connections end
//   at once (reset, not hung); after the restart the ztunnel finds the
//   enrolled pods again, capture is restored and traffic resumes;
// - the client's node: the client's connections fail closed while it is
//   down, and no application byte crosses the link between the nodes in
//   plain text (capture on the bridge), then traffic resumes.
import t, { type Test } from "tap";
import { captureFabric, type FaultMesh, metricValue, startFaultMesh, type Traffic } from "./fault-fixture.js";
import { needsRoot } from "./netns-fixture.js";

async function killAndRecover(
  t: Test,
  mesh: FaultMesh,
  node: string,
  client: Traffic,
  outsider: Traffic,
): Promise<void> {
  const component = `ztunnel-${node}`;
  const oldPid = mesh.pid(component)!;
  t.ok(oldPid, `${component} runs`);
  const dropsBefore = client.drops().length;
  const killedAt = Date.now();
  process.kill(oldPid, "SIGKILL");
  await client.until(
    () => client.drops().length >= dropsBefore + client.opts.long,
    15_000,
    "the long-lived connections to end",
  );
  const ended = client.drops().slice(dropsBefore);
  const lastEnd = Math.max(...ended.map((e) => e.t)) - killedAt;
  t.ok(
    lastEnd < 10_000,
    `every long-lived connection ended within ${lastEnd} ms of the kill (reset, not hung)`,
  );
  t.comment(`long-lived connections ended with: ${[...new Set(ended.map((e) => e.error))].join(", ")}`);

  const newPid = await mesh.restarted(component, oldPid);
  const readyAt = Date.now();
  t.comment(`${component} back (pid ${newPid}) ready ${readyAt - killedAt} ms after the kill`);
  await client.until(() => client.lastShorts(5, true), 30_000, "new connections to succeed again");
  const recoveredAt = Date.now();
  const outage = client.shortsSince(killedAt, recoveredAt);
  t.comment(
    `${node}: user-visible outage ${recoveredAt - killedAt} ms; new connections in it: ${JSON.stringify(outage)}`,
  );
  const metrics = await mesh.ztunnelMetrics(node);
  t.equal(
    metricValue(metrics, "ambit_node_agent_enrolled_pods"),
    1,
    `the restarted ${component} captures its enrolled pod again`,
  );
  t.equal(metricValue(metrics, "ambit_ztunnel_ready"), 1, `${component} reports ready`);
  t.equal(
    outsider.shortsSince(0).ok,
    0,
    "the outsider never reached the STRICT server (no plaintext bypass)",
  );
}

t.test(
  "ztunnel killed on either node: fails closed while down, capture restored after",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const started = Date.now();
    const mesh = await startFaultMesh(t);
    t.comment(`mesh up in ${Date.now() - started} ms`);
    const server = await mesh.pod("mesh/server");
    const client = await mesh.traffic(t, "mesh/client", {
      host: "server.mesh",
      port: 80,
      long: 10,
      rate: 10,
    });
    // Straight at the server pod's application port from an unenrolled pod: STRICT refuses it.
    const outsider = await mesh.traffic(t, "plain/outsider", {
      host: server.ip,
      port: 8080,
      long: 0,
      rate: 5,
      timeoutMs: 2000,
    });
    t.ok(client.lastShorts(3, true), "the client is served before the fault");
    t.equal(outsider.shortsSince(0).ok, 0, "the outsider is refused before the fault");

    t.test("the server's ztunnel", async (t) => {
      await killAndRecover(t, mesh, "node-2", client, outsider);
    });

    t.test("the client's ztunnel", async (t) => {
      // Reopen long-lived connections for this round: a fresh generator.
      const again = await mesh.traffic(t, "mesh/client", {
        host: "server.mesh",
        port: 80,
        long: 10,
        rate: 10,
      });
      const plain = await captureFabric(t, mesh.meshId, `tcp port 8080 and host ${server.ip}`);
      await killAndRecover(t, mesh, "node-1", again, outsider);
      const lines = await plain.stop();
      // The outsider's own plain attempts to server:8080 are expected on the link; the mesh client's are not.
      const clientIp = (await mesh.pod("mesh/client")).ip;
      t.same(
        lines.filter((l) => l.includes(`${clientIp}.`)),
        [],
        "no packet of the mesh client to the application port crossed the link while its ztunnel was down",
      );
      t.ok(lines.length > 0, "the capture does see the outsider's plain attempts (it works)");
      await again.stop();
    });
    t.comment(`total ${Date.now() - started} ms`);
  },
);

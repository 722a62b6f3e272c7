// The L4 data path for real: a controller and two ztunnels (in this process),
// two nodes and three pods in network namespaces. A client pod's connection
// to a Service VIP is captured in its namespace, carried over HBONE (mTLS,
// HTTP/2 CONNECT) from the client pod's IP to the server pod's 15008, and
// delivered to the server application with the client's IP as its source.
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { nameServer, needsRoot, readAll } from "./netns-fixture.js";
import { inProcessMesh, twoNodeDemoYaml } from "./ztunnel-fixture.js";

const VIP = "10.96.7.7";

function meshYaml(ips: Record<string, string>): string {
  return twoNodeDemoYaml(ips, { vip: VIP, portName: "http", outsider: true });
}

const denyClient = `
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-client, namespace: demo }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/default"] } }] }]
`;

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get()) as
    | { values: { labels: Record<string, string>; value: number }[] }
    | undefined;
  return (m?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0);
}

t.test("L4 mTLS between pods on two nodes, in-pod capture, L4 DENY", { skip: needsRoot }, async (t) => {
  const m = await inProcessMesh(t, {
    nodes: ["node1", "node2"],
    pods: [
      { key: "demo/client", node: "node1" },
      { key: "demo/server", node: "node2" },
      { key: "plain/outsider", node: "node1" },
    ],
    yaml: meshYaml,
  });
  const { controller, cfgDir } = m;
  const client = m.pods["demo/client"]!;
  const server = m.pods["demo/server"]!;
  const outsider = m.pods["plain/outsider"]!;
  const z1 = await m.startZtunnel("node1", { args: ["--drain-seconds", "1"] });
  const z2 = await m.startZtunnel("node2", { args: ["--drain-seconds", "1"] });
  t.same(
    z1.agent.pods().map((p) => p.key),
    ["demo/client"],
    "node1 captures its enrolled pod only",
  );
  t.same(
    z2.agent.pods().map((p) => p.key),
    ["demo/server"],
  );

  await nameServer(t, server.netnsPath, 8080, "server");

  const viaVip = await connectInNetns(client.netnsPath, { host: VIP, port: 80 });
  t.equal(
    await readAll(viaVip),
    `server ${client.ip}`,
    "VIP → endpoint over HBONE, client IP kept as source",
  );
  const direct = await connectInNetns(client.netnsPath, { host: server.ip, port: 8080 });
  t.equal(await readAll(direct), `server ${client.ip}`, "pod IP direct over HBONE");
  t.ok(z2.state.workloadByIp(client.ip), "state knows the client");
  t.ok(
    (await metricValue("istio_tcp_connections_opened_total", {
      reporter: "source",
      destination_workload: "server",
    })) >= 2,
  );
  t.ok(
    (await metricValue("istio_tcp_connections_opened_total", {
      reporter: "destination",
      source_principal: "spiffe://cluster.local/ns/demo/sa/default",
    })) >= 2,
    "the destination saw the client's SPIFFE identity",
  );

  // An unenrolled pod talking to an enrolled (PERMISSIVE by default) pod: plain text, allowed.
  const plainConn = await connectInNetns(outsider.netnsPath, { host: server.ip, port: 8080 });
  t.equal(
    await readAll(plainConn),
    `server ${outsider.ip}`,
    "plaintext from outside the mesh is accepted (PERMISSIVE)",
  );

  // A DENY policy takes effect without restarting anything.
  const denied0 = await metricValue("ambit_authz_denials_total", {});
  const synced = once(controller, "synced");
  await writeFile(join(cfgDir, "deny.yaml"), denyClient);
  await synced;
  await t.resolves(
    (async () => {
      for (let i = 0; i < 50; i++) {
        const c = await connectInNetns(client.netnsPath, { host: VIP, port: 80 });
        const got = await readAll(c).catch(() => "");
        if (got === "") return;
        await new Promise((r) => setImmediate(r));
      }
      throw new Error("still allowed");
    })(),
    "the connection is closed once the DENY policy arrives",
  );
  t.ok((await metricValue("ambit_authz_denials_total", {})) > denied0, "the denial is counted");
});

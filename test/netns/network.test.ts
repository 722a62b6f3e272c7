// The local mesh network for real: two nodes, pods on each, plain TCP between
// them across the fabric, and a teardown that leaves nothing behind, even
// from a partial setup.
import dgram from "node:dgram";
import { once } from "node:events";
import fs from "node:fs";
import t from "tap";
import { MeshNetwork } from "../../local/mesh-network.js";
import { applySteps, destroyMeshNetwork, listNetns, meshPrefix, planPodDns } from "../../local/network.js";
import { runCommand } from "../../ztunnel/node-agent/command.js";
import { connectInNetns, listenInNetns } from "../../ztunnel/node-agent/native.js";
import { nameServer, needsRoot, readAll, testMeshId } from "./netns-fixture.js";

t.test(
  "two nodes, pods reach each other across nodes; teardown removes everything",
  { skip: needsRoot },
  async (t) => {
    const meshId = testMeshId();
    t.teardown(() => destroyMeshNetwork(meshId, { graceMs: 500 }).then(() => undefined));
    const mesh = await MeshNetwork.create({ meshId, nodes: ["node1", "node2"] });
    const [n1, n2] = mesh.layout.nodes;
    t.equal(n1?.ip, "10.213.0.10");
    t.equal(n2?.ip, "10.213.0.11");

    const client = await mesh.addPod({ key: "demo/client", node: "node1" });
    const server = await mesh.addPod({ key: "demo/server", node: "node2" });
    const neighbour = await mesh.addPod({ key: "demo/neighbour", node: "node1" });
    t.equal(client.ip, "10.213.1.2");
    t.equal(neighbour.ip, "10.213.1.3");
    t.equal(server.ip, "10.213.2.2");
    t.equal(
      await mesh.addPod({ key: "demo/client", node: "node1" }),
      client,
      "adding a present pod is a no-op",
    );
    await t.rejects(mesh.addPod({ key: "demo/other", node: "node2", ip: server.ip }), {
      code: "DUPLICATE_OBJECT",
    });

    await nameServer(t, server.netnsPath, 8080, "server");
    const across = await connectInNetns(client.netnsPath, { host: server.ip, port: 8080 });
    t.equal(
      await readAll(across),
      `server ${client.ip}`,
      "pod on node 1 reaches pod on node 2, source address kept",
    );
    const same = await connectInNetns(neighbour.netnsPath, { host: server.ip, port: 8080 });
    t.equal(await readAll(same), `server ${neighbour.ip}`);

    await nameServer(t, client.netnsPath, 9090, "client");
    const sameNode = await connectInNetns(neighbour.netnsPath, { host: client.ip, port: 9090 });
    t.equal(await readAll(sameNode), `client ${neighbour.ip}`, "pods on the same node reach each other");
    const fromCp = await connectInNetns(mesh.layout.controlPlane.netnsPath, { host: server.ip, port: 8080 });
    t.equal(await readAll(fromCp), `server ${mesh.layout.controlPlane.ip}`, "the control plane reaches pods");
    await nameServer(t, mesh.layout.controlPlane.netnsPath, 15012, "cp");
    const nodeToCp = await connectInNetns(n2!.netnsPath, { host: mesh.layout.controlPlane.ip, port: 15012 });
    t.equal(await readAll(nodeToCp), `cp ${n2!.ip}`, "a node reaches the control plane");

    // DNS of a pod can be sent to a server on its node (a DNS proxy for pods outside the mesh).
    await applySteps(planPodDns(client, { ip: n1!.ip, port: 15053 }));
    await applySteps(planPodDns(client, { ip: n1!.ip, port: 15053 })); // idempotent
    const dnsServer = dgram.createSocket("udp4");
    dnsServer.bind({ fd: listenInNetns(n1!.netnsPath, { host: n1!.ip, port: 15053, protocol: "udp" }) });
    t.teardown(() => dnsServer.close());
    dnsServer.on("message", (msg, rinfo) =>
      dnsServer.send(Buffer.from(`answer ${msg} from ${rinfo.address}`), rinfo.port, rinfo.address),
    );
    const query = dgram.createSocket("udp4");
    const listening = once(query, "listening"); // emitted within bind() when given an fd
    query.bind({ fd: listenInNetns(client.netnsPath, { port: 0, protocol: "udp" }) });
    await listening;
    query.send("q", 53, "10.255.255.53");
    const [answer] = (await once(query, "message")) as [Buffer];
    query.close();
    t.equal(
      answer.toString(),
      `answer q from ${client.ip}`,
      "DNS to any server reaches the node's DNS proxy, and the answer comes back",
    );
    const rules = (await runCommand(["nsenter", `--net=${client.netnsPath}`, "iptables-save", "-t", "nat"]))
      .stdout;
    t.equal(rules.split("\n").filter((l) => l === "-A OUTPUT -j AMBIT_DNS").length, 1);

    // Removing a pod ends its processes and frees its address for the next one.
    await mesh.removePod("demo/neighbour");
    t.notOk(fs.existsSync(neighbour.netnsPath));
    const again = await mesh.addPod({ key: "demo/third", node: "node1" });
    t.equal(again.ip, neighbour.ip, "address reused");

    const removed = await mesh.destroy();
    t.equal(removed.length, 7, "fabric, control plane, 2 nodes, 3 pods");
    t.same(listNetns(meshPrefix(meshId)), [], "no namespace with the prefix is left");
  },
);

t.test("teardown of a partial setup, and twice", { skip: needsRoot }, async (t) => {
  const meshId = testMeshId();
  t.teardown(() => destroyMeshNetwork(meshId, { graceMs: 500 }).then(() => undefined));
  // A node namespace exists with no fabric (as if `up` died half-way), plus a process in it.
  await runCommand(["ip", "netns", "add", `${meshPrefix(meshId)}n-node1`]);
  await runCommand(["ip", "netns", "add", `${meshPrefix(meshId)}p-demo.x`]);
  await t.rejects(
    MeshNetwork.create({ meshId, nodes: ["node1"] }),
    { code: "LOCAL_STATE" },
    "refuses to build over leftovers",
  );
  const removed = await destroyMeshNetwork(meshId, { graceMs: 500 });
  t.same(removed.sort(), [`${meshPrefix(meshId)}n-node1`, `${meshPrefix(meshId)}p-demo.x`]);
  t.same(await destroyMeshNetwork(meshId), [], "second teardown is a no-op");
  // A failing plan removes what it made.
  await t.rejects(MeshNetwork.create({ meshId, nodes: ["Bad_Name"] }), { code: "INVALID_FIELD" });
  t.same(listNetns(meshPrefix(meshId)), []);
});

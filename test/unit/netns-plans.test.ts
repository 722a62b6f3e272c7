// The pure halves of the OS-facing layer: capture rules, mesh addressing and
// naming, pod plans, container argv/env, and the state file round trip.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import t from "tap";
import {
  allocatePodIp,
  meshLayout,
  planMeshNetwork,
  planPodDns,
  planPodNetwork,
  planPodRemoval,
  podNetnsName,
  podNetwork,
} from "../../local/network.js";
import { containerArgv, containerEnv } from "../../local/pod-runner.js";
import {
  PORTS,
  planCapture,
  renderApplyScript,
  renderRemoveScript,
} from "../../ztunnel/node-agent/capture.js";

t.test("capture plan: outbound, inbound, DNS, marks", async (t) => {
  const plan = planCapture();
  const lines = plan.restore.split("\n");
  t.ok(
    lines.includes("-A AMBIT_OUTPUT -m mark --mark 0x539/0xfff -j RETURN"),
    "ztunnel's own sockets skip capture first",
  );
  t.ok(lines.includes(`-A AMBIT_OUTPUT -p tcp --syn -j REDIRECT --to-ports ${PORTS.outbound}`));
  t.ok(lines.includes(`-A AMBIT_PREROUTING -p tcp --dport ${PORTS.hbone} -j RETURN`), "HBONE is left alone");
  t.ok(lines.includes(`-A AMBIT_PREROUTING -p tcp --syn -j REDIRECT --to-ports ${PORTS.inbound}`));
  t.ok(
    lines.includes(`-A AMBIT_OUTPUT ! -d 127.0.0.1/32 -p udp --dport 53 -j REDIRECT --to-ports ${PORTS.dns}`),
  );
  const markRule = lines.indexOf("-A AMBIT_OUTPUT -m mark --mark 0x539/0xfff -j RETURN");
  const redirect = lines.indexOf(`-A AMBIT_OUTPUT -p tcp --syn -j REDIRECT --to-ports ${PORTS.outbound}`);
  t.ok(markRule < redirect, "the mark check comes before the redirect");
  t.same(
    plan.jumps.map((j) => `${j.table}:${j.from}->${j.to}`),
    [
      "nat:OUTPUT->AMBIT_OUTPUT",
      "nat:PREROUTING->AMBIT_PREROUTING",
      "mangle:OUTPUT->AMBIT_OUTPUT",
      "mangle:PREROUTING->AMBIT_PREROUTING",
    ],
  );

  const noDns = planCapture({
    dns: false,
    inboundExcludePorts: [9000],
    outboundExcludeCidrs: ["10.0.0.0/8"],
    mark: 0x10,
  });
  t.notMatch(noDns.restore, /--dport 53/);
  t.match(noDns.restore, /-A AMBIT_PREROUTING -p tcp --dport 9000 -j RETURN/);
  t.match(noDns.restore, /-A AMBIT_OUTPUT -d 10.0.0.0\/8 -j RETURN/);
  t.match(noDns.restore, /--mark 0x10\/0xfff -j RETURN/);
});

t.test("capture scripts: apply adds jumps only when missing, remove tolerates absence", async (t) => {
  const plan = planCapture();
  const apply = renderApplyScript(plan);
  t.match(apply, /iptables-restore -w 5 --noflush <<'AMBIT_RULES'/);
  t.match(
    apply,
    /iptables -w 5 -t nat -C OUTPUT -j AMBIT_OUTPUT 2>\/dev\/null \|\| iptables -w 5 -t nat -I OUTPUT 1 -j AMBIT_OUTPUT/,
  );
  t.match(apply, /ip route replace local 0.0.0.0\/0 dev lo table 133/);
  const remove = renderRemoveScript(plan);
  t.match(remove, /while iptables -w 5 -t nat -D OUTPUT -j AMBIT_OUTPUT 2>\/dev\/null; do :; done/);
  t.match(remove, /iptables -w 5 -t mangle -X AMBIT_PREROUTING 2>\/dev\/null \|\| true/);
});

t.test("mesh layout: names and addresses", async (t) => {
  const l = meshLayout({ meshId: "demo", nodes: ["node1", "node2"] });
  t.equal(l.prefix, "ambit-demo-");
  t.same(
    l.nodes.map((n) => [n.netns, n.ip, n.podCidr, n.podGateway]),
    [
      ["ambit-demo-n-node1", "10.213.0.10", "10.213.1.0/24", "10.213.1.1"],
      ["ambit-demo-n-node2", "10.213.0.11", "10.213.2.0/24", "10.213.2.1"],
    ],
  );
  t.equal(l.controlPlane.ip, "10.213.0.2");
  t.equal(l.fabric.netnsPath, "/var/run/netns/ambit-demo-fabric");
  t.throws(() => meshLayout({ meshId: "Demo!", nodes: ["a"] }), { code: "INVALID_FIELD" });
  t.throws(() => meshLayout({ meshId: "demo", nodes: [] }), { code: "INVALID_FIELD" });
  t.throws(() => meshLayout({ meshId: "demo", nodes: ["a", "a"] }), { message: /listed twice/ });
  t.throws(() => meshLayout({ meshId: "demo", nodes: ["Node_1"] }), { message: /node 'Node_1'/ });
});

t.test("every plan touches only the mesh's own namespaces; interface names fit", async (t) => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z0-9]{1,12}$/),
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,40}$/), { minLength: 1, maxLength: 5 }),
      (meshId, nodeCount, podNames) => {
        const l = meshLayout({ meshId, nodes: Array.from({ length: nodeCount }, (_, i) => `node${i + 1}`) });
        const used: string[] = [];
        const steps = [...planMeshNetwork(l)];
        for (const [i, name] of podNames.entries()) {
          const node = l.nodes[i % l.nodes.length]!;
          const ip = allocatePodIp(node, used);
          used.push(ip);
          const pod = podNetwork(l, { key: `ns/${name}-${i}`, node: node.name, ip });
          steps.push(...planPodNetwork(l, pod), ...planPodRemoval(pod));
        }
        for (const s of steps) {
          for (let i = 0; i < s.length; i++) {
            if (s[i] === "-n" || (s[i] === "netns" && (s[i + 1] === "add" || s[i + 1] === "del"))) {
              const ns = s[i] === "-n" ? s[i + 1]! : s[i + 2]!;
              if (!ns.startsWith(l.prefix)) return false;
            }
            if (
              (s[i] === "dev" || s[i] === "name" || (s[i] === "link" && s[i + 1] === "add")) &&
              s[i + 1] &&
              s[i + 1]!.length > 15
            ) {
              return false;
            }
          }
        }
        return true;
      },
    ),
  );
  t.pass("property held");
});

t.test("pod addresses and names", async (t) => {
  const l = meshLayout({ meshId: "demo", nodes: ["node1", "node2"] });
  const n2 = l.nodes[1]!;
  t.equal(allocatePodIp(n2, []), "10.213.2.2");
  t.equal(allocatePodIp(n2, ["10.213.2.2", "10.213.2.4"]), "10.213.2.3", "lowest free");
  const full = Array.from({ length: 253 }, (_, i) => `10.213.2.${i + 2}`);
  t.throws(() => allocatePodIp(n2, full), { message: /no free pod address/ });
  const p = podNetwork(l, { key: "default/web-0", node: "node2", ip: "10.213.2.7" });
  t.same(p, {
    key: "default/web-0",
    node: "node2",
    netns: "ambit-demo-p-default.web-0",
    netnsPath: "/var/run/netns/ambit-demo-p-default.web-0",
    ip: "10.213.2.7",
    nodeIf: "p7",
  });
  t.throws(() => podNetwork(l, { key: "default/web-0", node: "node1", ip: "10.213.2.7" }), {
    message: /not a pod address of node node1/,
  });
  t.throws(() => podNetwork(l, { key: "default/web-0", node: "node9", ip: "10.213.2.7" }), {
    message: /node 'node9'/,
  });
  const long = podNetnsName(l, `ns/${"x".repeat(300)}`);
  t.ok(long.length <= 200 && long.startsWith("ambit-demo-p-ns."));
  t.not(long, podNetnsName(l, `ns/${"x".repeat(299)}y`), "hashed names stay distinct");
  const steps = planPodNetwork(l, p).map((s) => s.join(" "));
  t.same(steps.slice(0, 3), [
    "ip netns add ambit-demo-p-default.web-0",
    "ip -n ambit-demo-p-default.web-0 link set lo up",
    "ip -n ambit-demo-n-node2 link add p7 type veth peer name eth0 netns ambit-demo-p-default.web-0",
  ]);
  t.ok(steps.includes("ip -n ambit-demo-p-default.web-0 route add default via 10.213.2.1 dev eth0"));
});

t.test("pod DNS redirect plan", async (t) => {
  const l = meshLayout({ meshId: "demo", nodes: ["node1"] });
  const p = podNetwork(l, { key: "a/b", node: "node1", ip: "10.213.1.2" });
  const [step] = planPodDns(p, { ip: "10.213.0.10", port: 15053 });
  t.same(step?.slice(0, 4), ["nsenter", "--net=/var/run/netns/ambit-demo-p-a.b", "sh", "-ec"]);
  t.match(step?.[4], /-A AMBIT_DNS -p udp --dport 53 -j DNAT --to-destination 10.213.0.10:15053/);
  t.match(step?.[4], /-C OUTPUT -j AMBIT_DNS 2>\/dev\/null \|\| iptables -w 5 -t nat -A OUTPUT -j AMBIT_DNS/);
});

t.test("container argv and env follow Kubernetes", async (t) => {
  t.same(containerArgv("a/b", { name: "c", command: ["node"], args: ["x.js"] }, "spec.containers[0]"), [
    "node",
    "x.js",
  ]);
  t.same(containerArgv("a/b", { name: "c", args: ["sleep", "1"] }, "spec.containers[0]"), ["sleep", "1"]);
  t.throws(() => containerArgv("a/b", { name: "c", image: "nginx" }, "spec.containers[2]"), {
    message:
      "Pod a/b: field spec.containers[2].command: no command or args: images are not run, give the program to start",
  });
  const env = containerEnv(
    {
      key: "shop/web-1",
      netnsPath: "/x",
      ip: "10.213.1.9",
      containers: [],
      fieldRefs: { "spec.nodeName": "node1" },
    },
    {
      name: "c",
      env: [
        { name: "A", value: "1" },
        { name: "B", value: "$(A)-$(MISSING)" },
        { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
        { name: "NS", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "SECRET", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
      ],
    },
  );
  t.match(env, { A: "1", B: "1-$(MISSING)", IP: "10.213.1.9", NODE: "node1", NS: "shop", HOSTNAME: "web-1" });
  t.notOk("SECRET" in env, "unresolved secret refs are left out");
});

t.test("state file round trip", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-state-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  process.env.AMBIT_RUN_DIR = dir;
  const state = await import(`../../local/state.js?run=${Date.now()}`);
  const layout = meshLayout({ meshId: "demo", nodes: ["node1"] });
  const s = state.newState(layout, "/examples/demo");
  s.processes.push(state.processRecord("self", process.pid));
  state.writeState(s);
  t.equal(state.statePath("demo"), path.join(dir, "demo", "state.json"));
  t.same(state.readState("demo"), s);
  t.same(state.listMeshes(), ["demo"]);
  t.ok(state.isSameProcess(s.processes[0]), "pid + start time identify this process");
  t.notOk(state.isSameProcess({ ...s.processes[0], startTime: 1 }), "a reused pid is not the same process");
  state.updateState("demo", (x: { pods: Record<string, unknown> }) => {
    x.pods["a/b"] = { key: "a/b" };
  });
  t.ok(state.readState("demo").pods["a/b"]);
  t.equal(state.readState("other"), undefined);
  fs.writeFileSync(state.statePath("demo"), "{");
  t.throws(() => state.readState("demo"), { code: "LOCAL_STATE" });
  state.removeState("demo");
  t.same(state.listMeshes(), []);
});

// The pure parts of `ambit up`'s supervisor: node names, pod placement, the
// facts and pods files, log sources, access-log lines, and the file follower.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { meshLayout } from "../../local/network.js";
import { followFile, formatAccess, logSources, parseAccessLine } from "../../local/supervisor-logs.js";
import {
  factsJson,
  isComponentKey,
  meshPaths,
  placePods,
  planNodeNames,
  podsFileJson,
  ztunnelKey,
} from "../../local/supervisor-plan.js";

const pod = (nodeName?: string) => ({ spec: { containers: [], ...(nodeName ? { nodeName } : {}) } });

t.test("node names: node-1..N, then names pods and Nodes ask for", async (t) => {
  t.same(planNodeNames(2, []), ["node-1", "node-2"]);
  t.same(planNodeNames(1, [pod("node-2"), pod(), pod("zeta"), pod("node-1")], ["alpha"]), [
    "node-1",
    "alpha",
    "node-2",
    "zeta",
  ]);
  t.throws(() => planNodeNames(0, []), { code: "CONFIG" });
});

t.test("placement: kept, pinned, then spread by load in key order", async (t) => {
  const nodes = ["node-1", "node-2"];
  const placed = placePods(
    [
      { key: "a/c" },
      { key: "a/a" },
      { key: "a/b" },
      { key: "a/pinned", nodeName: "node-1" },
      { key: "a/old" },
    ],
    nodes,
    new Map([
      ["a/old", "node-2"],
      ["a/gone", "node-1"],
    ]),
  );
  t.same(Object.fromEntries(placed), {
    "a/old": "node-2",
    "a/pinned": "node-1",
    "a/a": "node-1",
    "a/b": "node-2",
    "a/c": "node-1",
  });
  t.notOk(placed.has("a/gone"), "pods no longer wanted are not placed");
  const again = placePods([{ key: "x/1" }, { key: "x/2" }, { key: "x/3" }], nodes, new Map());
  t.same([...again.values()], ["node-1", "node-2", "node-1"], "the same input gives the same placement");
});

t.test("facts and pods files", async (t) => {
  const layout = meshLayout({ meshId: "u1", nodes: ["node-1", "node-2"] });
  const pods = [
    { key: "b/y", node: "node-2", ip: "10.213.2.2", netnsPath: "/var/run/netns/y", ready: true },
    { key: "a/x", node: "node-1", ip: "10.213.1.2", netnsPath: "/var/run/netns/x", ready: false },
  ];
  t.same(factsJson(layout, pods), {
    pods: {
      "a/x": { ip: "10.213.1.2", node: "node-1", ready: false },
      "b/y": { ip: "10.213.2.2", node: "node-2", ready: true },
    },
    nodes: { "node-1": { address: "10.213.0.10" }, "node-2": { address: "10.213.0.11" } },
  });
  t.same(podsFileJson("node-2", pods), [{ key: "b/y", netnsPath: "/var/run/netns/y", ip: "10.213.2.2" }]);
  t.ok(isComponentKey("ambit-system/controller"));
  t.ok(isComponentKey(ztunnelKey("node-1")));
  t.notOk(isComponentKey("ambit-system/something-else"), "a user's pod in ambit-system is not a component");
});

t.test("log sources name components, pods and containers", async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-logs-"));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  process.env.AMBIT_RUN_DIR = root;
  const paths = meshPaths("m1");
  t.same(logSources(paths, "controller"), [
    { label: "controller", file: paths.containerLog("ambit-system/controller", "controller") },
  ]);
  t.same(logSources(paths, "ztunnel-node-2"), [
    { label: "ztunnel-node-2", file: paths.containerLog("ambit-system/ztunnel-node-2", "ztunnel") },
  ]);
  t.same(logSources(paths, "demo/web/app"), [
    { label: "demo/web/app", file: paths.containerLog("demo/web", "app") },
  ]);
  t.throws(
    () => logSources(paths, "demo/web"),
    { code: "CONFIG" },
    "a pod without logs yet is an error that says where it looked",
  );
  fs.mkdirSync(paths.podLogDir("demo/web"), { recursive: true });
  fs.writeFileSync(paths.containerLog("demo/web", "b"), "");
  fs.writeFileSync(paths.containerLog("demo/web", "a"), "");
  t.same(
    logSources(paths, "demo/web").map((s) => s.label),
    ["demo/web/a", "demo/web/b"],
    "every container of a pod",
  );
  t.throws(() => logSources(paths, "a/b/c/d"), { code: "CONFIG" });
});

t.test("access lines: parsed from ztunnel's JSON log, shown with both identities", async (t) => {
  const line = JSON.stringify({
    time: "2026-11-26T09:54:44.248Z",
    component: "ztunnel.access",
    direction: "outbound",
    src: {
      addr: "10.213.1.2:5000",
      identity: "spiffe://cluster.local/ns/demo/sa/client",
      workload: "demo/client",
    },
    dst: {
      addr: "10.213.2.2:8080",
      identity: "spiffe://cluster.local/ns/demo/sa/server",
      workload: "demo/server",
      service: "server.demo.svc.cluster.local",
    },
    bytesSent: 56,
    bytesReceived: 201,
    durationMs: 9,
    reason: "eof",
    msg: "connection complete",
  });
  const a = parseAccessLine(line);
  t.ok(a);
  t.equal(
    formatAccess("node-1", a!),
    "09:54:44.248 node-1 outbound demo/client [spiffe://cluster.local/ns/demo/sa/client] -> demo/server [spiffe://cluster.local/ns/demo/sa/server] via server.demo.svc.cluster.local sent=56B recv=201B 9ms eof",
  );
  t.equal(
    parseAccessLine(JSON.stringify({ component: "ztunnel", msg: "ztunnel ready" })),
    undefined,
    "other log lines are not access lines",
  );
  t.equal(parseAccessLine("not json"), undefined);
  t.equal(parseAccessLine("{broken"), undefined);
});

t.test("followFile: existing lines, appended lines, partial lines, a file replaced", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-follow-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "x.log");
  const lines: string[] = [];
  let waiter: (() => void) | undefined;
  const f = followFile(file, (l) => {
    lines.push(l);
    waiter?.();
  });
  t.teardown(() => f.close());
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      if (lines.length >= n) return resolve();
      waiter = () => {
        if (lines.length >= n) resolve();
      };
    });
  fs.writeFileSync(file, "one\ntw");
  await until(1);
  fs.appendFileSync(file, "o\nthree\n");
  await until(3);
  t.same(lines, ["one", "two", "three"], "a line is delivered once complete");
  fs.writeFileSync(`${file}.new`, "fresh\n");
  fs.renameSync(`${file}.new`, file);
  await until(4);
  t.equal(lines[3], "fresh", "a replaced file is read from its start");
});

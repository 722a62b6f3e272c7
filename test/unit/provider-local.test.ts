// The local provider on a real temporary directory: watching, last good
// versions kept on bad edits, workload expansion, facts, VIP allocation.
import { once } from "node:events";
import { mkdir, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { LocalProvider, parseFile } from "../../controller/provider/local/index.js";
import type { ClusterSnapshot } from "../../controller/provider/objects.js";
import type { ObjectError } from "../../core/errors/errors.js";
import { setLevel } from "../../core/telemetry/logger.js";

setLevel("silent");

const NS = `apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {ambit.dev/dataplane-mode: ambient}}
`;

function service(name: string, port = 80): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: ${port}, targetPort: 8080}]
`;
}

function deployment(name: string, replicas: number, command = "serve"): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: demo}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers: [{name: main, command: [${command}], ports: [{name: http, containerPort: 8080}]}]
`;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ambit-provider-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function started(t: Test, dir: string): Promise<LocalProvider> {
  const p = new LocalProvider({ dir, debounceMs: 20 });
  t.teardown(() => p.close());
  await p.start();
  return p;
}

/** Resolves with the first snapshot (current or future) that satisfies `pred`. */
function snapshotWhere(p: LocalProvider, pred: (s: ClusterSnapshot) => boolean): Promise<ClusterSnapshot> {
  if (pred(p.snapshot())) return Promise.resolve(p.snapshot());
  return new Promise((resolve) => {
    const on = (s: ClusterSnapshot) => {
      if (!pred(s)) return;
      p.off("snapshot", on);
      resolve(s);
    };
    p.on("snapshot", on);
  });
}

function errorsWhere(p: LocalProvider, pred: (e: ObjectError[]) => boolean): Promise<ObjectError[]> {
  if (pred(p.errors())) return Promise.resolve(p.errors());
  return new Promise((resolve) => {
    const on = (e: ObjectError[]) => {
      if (!pred(e)) return;
      p.off("errors", on);
      resolve(e);
    };
    p.on("errors", on);
  });
}

const names = (xs: { metadata: { name: string } }[]) => xs.map((x) => x.metadata.name);

t.test("reads the directory recursively and emits a new snapshot when a file changes", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "ns.yaml"), NS);
  await mkdir(join(dir, "apps"));
  await writeFile(join(dir, "apps", "svc.yml"), `${service("a")}---\n${service("b")}`);
  await writeFile(join(dir, "README.md"), "not yaml");
  const p = await started(t, dir);
  t.same(names(p.snapshot().services), ["a", "b"]);
  t.equal(p.snapshot().sources?.["Service demo/a"], "apps/svc.yml");
  t.same(p.errors(), []);

  const changed = snapshotWhere(p, (s) => s.services.some((x) => x.spec.ports?.[0]?.port === 8081));
  await writeFile(join(dir, "apps", "svc.yml"), `${service("a", 8081)}---\n${service("b")}`);
  const s = await changed;
  t.same(names(s.services), ["a", "b"]);

  const added = snapshotWhere(p, (s) => s.services.length === 3);
  await mkdir(join(dir, "apps", "more"));
  await writeFile(join(dir, "apps", "more", "c.yaml"), service("c"));
  t.same(names((await added).services), ["a", "b", "c"], "a file in a new subdirectory is picked up");

  const removed = snapshotWhere(p, (s) => s.services.length === 1);
  await unlink(join(dir, "apps", "svc.yml"));
  t.same(names((await removed).services), ["c"], "a deleted file's objects go away");
});

t.test("a file that stops parsing keeps serving its last good objects", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "ns.yaml"), NS);
  await writeFile(join(dir, "svc.yaml"), service("a"));
  const p = await started(t, dir);
  const before = JSON.stringify(p.snapshot());
  let snapshots = 0;
  p.on("snapshot", () => snapshots++);

  const broken = errorsWhere(p, (e) => e.some((x) => x.code === "YAML_PARSE"));
  await writeFile(join(dir, "svc.yaml"), `${service("a", 90)}  ports: [{port: 1}\n`);
  const errs = await broken;
  t.match(errs.map((e) => e.message).join("\n"), /svc\.yaml.*YAML syntax error at line \d+/);
  t.match(errs.map((e) => e.message).join("\n"), /keeping the 1 object\(s\) of its last good version/);
  t.equal(JSON.stringify(p.snapshot()), before, "the last good configuration stays served");
  t.equal(snapshots, 0, "no new snapshot for a broken file");

  const fixed = snapshotWhere(p, (s) => s.services[0]?.spec.ports?.[0]?.port === 90);
  await writeFile(join(dir, "svc.yaml"), service("a", 90));
  await fixed;
  await errorsWhere(p, (e) => e.length === 0);
  t.same(p.errors(), [], "errors clear once the file is good again");
});

t.test("an object that becomes invalid keeps its last good version; others update", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "all.yaml"), `${NS}---\n${service("a")}---\n${service("b")}`);
  const p = await started(t, dir);
  const next = snapshotWhere(
    p,
    (s) => s.services.find((x) => x.metadata.name === "b")?.spec.ports?.[0]?.port === 81,
  );
  await writeFile(join(dir, "all.yaml"), `${NS}---\n${service("a", 70000)}---\n${service("b", 81)}`);
  const s = await next;
  t.equal(
    s.services.find((x) => x.metadata.name === "a")?.spec.ports?.[0]?.port,
    80,
    "a keeps its last good port",
  );
  t.match(
    p.errors()[0]?.message,
    "Service demo/a (all.yaml): field spec.ports[0].port: must be at most 65535, got 70000",
  );
});

t.test("a duplicate object is refused, naming both files", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "a.yaml"), `${NS}---\n${service("a")}`);
  await writeFile(join(dir, "b.yaml"), service("a", 99));
  const p = await started(t, dir);
  t.equal(p.snapshot().services[0]?.spec.ports?.[0]?.port, 80, "the first file (by path) wins");
  t.equal(p.errors()[0]?.code, "DUPLICATE_OBJECT");
  t.match(p.errors()[0]?.message, "Service demo/a (b.yaml): already defined in a.yaml");
});

t.test("Deployment pods have generated names, stable across reloads and providers", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "app.yaml"), `${NS}---\n${deployment("web", 2)}`);
  const p1 = await started(t, dir);
  const first = names(p1.pods());
  t.equal(first.length, 2);
  for (const n of first) t.match(n, /^web-[bcdfghjklmnpqrstvwxz2456789]+-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  const pod = p1.pods()[0]!;
  t.same(pod.metadata.labels?.app, "web");
  t.ok(pod.metadata.labels?.["pod-template-hash"]);
  t.equal(pod.metadata.ownerReferences?.[0]?.kind, "ReplicaSet");
  t.equal(p1.snapshot().replicaSets[0]?.metadata.ownerReferences?.[0]?.name, "web");

  const p2 = await started(t, dir);
  t.same(names(p2.pods()), first, "a second reader of the same files gets the same names");

  const scaled = snapshotWhere(p1, (s) => s.pods.length === 3);
  await writeFile(join(dir, "app.yaml"), `${NS}---\n${deployment("web", 3)}`);
  const afterScale = names((await scaled).pods);
  for (const n of first) t.ok(afterScale.includes(n), `${n} survives scaling up`);

  const rolled = snapshotWhere(
    p1,
    (s) => s.pods.length === 3 && !s.pods.some((x) => first.includes(x.metadata.name)),
  );
  await writeFile(join(dir, "app.yaml"), `${NS}---\n${deployment("web", 3, "serve-v2")}`);
  await rolled;
  t.pass("a new template yields new pod names, as a rollout does");
});

t.test("StatefulSet, DaemonSet and Job expansion", async (t) => {
  const dir = await tempDir(t);
  const tpl = (app: string, restart = "Always") => `
  template:
    metadata: {labels: {app: ${app}}}
    spec:
      restartPolicy: ${restart}
      containers: [{name: main}]`;
  await writeFile(
    join(dir, "w.yaml"),
    `${NS}---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}${tpl("db")}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: demo}
spec:
  selector: {matchLabels: {app: agent}}${tpl("agent")}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: demo}
spec:${tpl("migrate", "Never")}
`,
  );
  const p = await started(t, dir);
  const s = p.snapshot();
  t.same(names(s.pods.filter((x) => x.metadata.labels?.app === "db")), ["db-0", "db-1"]);
  t.equal(s.pods.find((x) => x.metadata.name === "db-1")?.spec.hostname, "db-1");
  t.equal(
    s.pods.filter((x) => x.metadata.labels?.app === "agent").length,
    0,
    "no nodes known: no DaemonSet pods",
  );
  const job = s.pods.filter((x) => x.metadata.labels?.app === "migrate");
  t.equal(job.length, 1);
  t.equal(job[0]?.metadata.labels?.["job-name"], "migrate");

  const withNodes = snapshotWhere(
    p,
    (s) => s.pods.filter((x) => x.metadata.labels?.app === "agent").length === 2,
  );
  p.setFacts({
    nodes: new Map([
      ["node-1", { address: "172.30.0.1" }],
      ["node-2", { address: "172.30.0.2" }],
    ]),
  });
  const agents = (await withNodes).pods.filter((x) => x.metadata.labels?.app === "agent");
  t.same(agents.map((a) => a.spec.nodeName).sort(), ["node-1", "node-2"], "one DaemonSet pod per node");
});

t.test("live facts fill in pod IPs, nodes and readiness; the YAML's own values win", async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, "pods.yaml"),
    `${NS}---
apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: demo}
spec: {nodeName: node-2, containers: [{name: main}]}
status: {podIP: 10.244.2.5}
---
apiVersion: v1
kind: Pod
metadata: {name: free, namespace: demo}
spec: {containers: [{name: main}]}
`,
  );
  const p = await started(t, dir);
  t.notOk(p.snapshot().pods.find((x) => x.metadata.name === "free")?.status?.podIP);
  const next = once(p, "snapshot");
  p.setFacts({
    pods: new Map([
      ["demo/pinned", { ip: "10.9.9.9", node: "node-1", ready: true }],
      ["demo/free", { ip: "10.244.1.7", node: "node-1", ready: false }],
    ]),
    nodes: new Map([["node-1", { address: "172.30.0.1" }]]),
  });
  const [s] = (await next) as [ClusterSnapshot];
  const pinned = s.pods.find((x) => x.metadata.name === "pinned")!;
  const free = s.pods.find((x) => x.metadata.name === "free")!;
  t.equal(pinned.status?.podIP, "10.244.2.5");
  t.equal(pinned.spec.nodeName, "node-2");
  t.equal(free.status?.podIP, "10.244.1.7");
  t.equal(free.spec.nodeName, "node-1");
  t.equal(free.status?.hostIP, "172.30.0.1");
  t.same(free.status?.conditions, [{ type: "Ready", status: "False" }]);
  t.same(names(s.nodes), ["node-1"]);
});

t.test("Services without a clusterIP get a VIP that stays stable across reloads", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "a.yaml"), `${NS}---\n${service("a")}`);
  const p = await started(t, dir);
  const vip = p.snapshot().services[0]?.spec.clusterIP;
  t.match(vip, /^10\.96\.\d+\.\d+$/);
  const next = snapshotWhere(p, (s) => s.services.length === 2);
  await writeFile(join(dir, "b.yaml"), service("b"));
  const s = await next;
  t.equal(s.services.find((x) => x.metadata.name === "a")?.spec.clusterIP, vip);
  t.not(s.services.find((x) => x.metadata.name === "b")?.spec.clusterIP, vip);
});

t.test("start() fails clearly on a missing directory", async (t) => {
  const p = new LocalProvider({ dir: join(tmpdir(), `ambit-does-not-exist-${process.pid}`) });
  t.teardown(() => p.close());
  await t.rejects(p.start(), { code: "CONFIG", message: /cannot read config directory/ });
});

t.test("parseFile: Lists, empty documents, non-objects, namespace defaulting", async (t) => {
  const r = parseFile(
    `---
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 80}]}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: x, namespace: ignored}}
---
just a string
`,
    "f.yaml",
  );
  t.same(
    r.objects.map((o) => `${o.object.kind} ${o.object.metadata.namespace ?? "-"}/${o.object.metadata.name}`),
    ["Service default/a", "Namespace -/x"],
  );
  t.ok(r.objects[0]?.object.metadata.uid, "a uid is assigned");
  t.equal(r.errors.length, 1);
  t.match(r.errors[0]?.message, "document #3 (f.yaml): is not a mapping");
});

t.test(
  "examples/demo reads cleanly: a client on node-1, a server on node-2 behind Service server",
  async (t) => {
    const p = await started(t, join(process.cwd(), "examples/demo"));
    t.same(p.errors(), []);
    const s = p.snapshot();
    t.same(
      s.pods.map((x) => `${x.metadata.labels?.app}@${x.spec.nodeName}`),
      ["client@node-1", "server@node-2"],
    );
    const svc = s.services.find((x) => x.metadata.name === "server");
    t.same(svc?.spec.ports?.[0], { name: "http", port: 80, targetPort: "http" });
    t.equal(s.namespaces[0]?.metadata.labels?.["ambit.dev/dataplane-mode"], "ambient");
  },
);

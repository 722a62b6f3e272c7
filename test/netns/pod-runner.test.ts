// The pod runner for real: containers as processes inside a pod namespace,
// restarts with back-off, readiness probes of each kind, exec in the pod.
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { MeshNetwork } from "../../local/mesh-network.js";
import { alive, destroyMeshNetwork } from "../../local/network.js";
import { execInNetns } from "../../local/netns-process.js";
import { runProbe } from "../../local/pod-probes.js";
import { PodRunner, type PodRunSpec } from "../../local/pod-runner.js";
import { needsRoot, testMeshId, waitForFile } from "./netns-fixture.js";

const node = process.execPath;

async function onePodMesh(t: Test) {
  const meshId = testMeshId();
  t.teardown(() => destroyMeshNetwork(meshId, { graceMs: 500 }).then(() => undefined));
  const mesh = await MeshNetwork.create({ meshId, nodes: ["node1"] });
  const pod = await mesh.addPod({ key: "demo/web-0", node: "node1" });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-pod-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { mesh, pod, dir };
}

function runner(t: Test, spec: PodRunSpec, fast = true): PodRunner {
  const r = new PodRunner(
    spec,
    fast ? { backoff: { initialMs: 20, maxMs: 100 }, probeIntervalUntilReadyMs: 50, maxGraceMs: 2000 } : {},
  );
  t.teardown(() => r.close());
  return r;
}

/** A small HTTP server program, listening on the pod IP. */
const httpServer = (port: number, status = 200) =>
  `require("http").createServer((q, s) => { s.statusCode = q.url === "/healthz" ? ${status} : 404; s.end("ok"); }).listen(${port}, process.env.POD_IP)`;

t.test(
  "a container that exits is restarted, with env, in the pod's namespace",
  { skip: needsRoot },
  async (t) => {
    const { pod, dir } = await onePodMesh(t);
    const out = path.join(dir, "runs");
    const r = runner(t, {
      key: "demo/web-0",
      netnsPath: pod.netnsPath,
      ip: pod.ip,
      restartPolicy: "Always",
      logDir: dir,
      containers: [
        {
          name: "app",
          command: ["sh", "-c"],
          args: ['ip -o -4 addr show dev eth0 | grep -o "$POD_IP" >> "$OUT"; echo "$GREETING" ; exit 3'],
          env: [
            { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "OUT", value: out },
            { name: "NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "GREETING", value: "hello $(NAME)" },
          ],
        },
      ],
    });
    const exits: { code: number; restarting: boolean }[] = [];
    r.on("exit", (e) => exits.push(e));
    r.start();
    while (exits.length < 3) await once(r, "exit");
    t.ok(
      exits.every((e) => e.code === 3 && e.restarting),
      "each exit restarts (Always)",
    );
    t.ok((r.status()[0]?.restarts ?? 0) >= 2, "restart count kept");
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    t.ok(
      lines.length >= 3 && lines.every((l) => l === pod.ip),
      "ran inside the pod's namespace, with the pod IP in env",
    );
    t.match(
      fs.readFileSync(path.join(dir, "app.log"), "utf8"),
      /^hello web-0$/m,
      "$(VAR) expansion and log file",
    );
    t.notOk(r.ready, "a crashing pod is not ready");
  },
);

t.test("restartPolicy Never and OnFailure", { skip: needsRoot }, async (t) => {
  const { pod } = await onePodMesh(t);
  const base = { key: "demo/web-0", netnsPath: pod.netnsPath, ip: pod.ip };
  const never = runner(t, {
    ...base,
    restartPolicy: "Never",
    containers: [{ name: "job", command: ["sh", "-c", "exit 1"] }],
  });
  const completed = once(never, "completed");
  never.start();
  const [[status]] = (await completed) as [[{ exitCode: number }]];
  t.equal(status.exitCode, 1);
  t.equal(never.status()[0]?.restarts, 0);

  const onFailure = runner(t, {
    ...base,
    restartPolicy: "OnFailure",
    containers: [{ name: "ok", command: ["true"] }],
  });
  const done = once(onFailure, "completed");
  onFailure.start();
  await done;
  t.equal(onFailure.status()[0]?.exitCode, 0, "success is not restarted under OnFailure");
});

t.test("an exec readiness probe gates ready", { skip: needsRoot }, async (t) => {
  const { pod, dir } = await onePodMesh(t);
  const flag = path.join(dir, "ready");
  const probes = path.join(dir, "probes");
  const r = runner(t, {
    key: "demo/web-0",
    netnsPath: pod.netnsPath,
    ip: pod.ip,
    containers: [
      {
        name: "app",
        command: ["sleep", "600"],
        readinessProbe: {
          exec: { command: ["sh", "-c", `echo probe >> ${probes}; test -f ${flag}`] },
          periodSeconds: 1,
        },
      },
    ],
  });
  const events: string[] = [];
  r.on("ready", () => events.push("ready"));
  r.on("unready", () => events.push("unready"));
  // Watch the probe log: once a probe has failed at least twice, the flag is set.
  fs.writeFileSync(probes, "");
  r.start();
  await waitForFile(probes, (text) => text.split("\n").filter(Boolean).length >= 2);
  t.notOk(r.ready, "not ready while the probe fails");
  t.same(events, []);
  const ready = once(r, "ready");
  fs.writeFileSync(flag, "");
  await ready;
  t.ok(r.ready);
  t.equal(r.status()[0]?.ready, true);

  // Failing again for failureThreshold (3) probes makes it unready.
  const unready = once(r, "unready");
  fs.rmSync(flag);
  await unready;
  t.notOk(r.ready);

  // close() ends the process (and its group).
  const pid = r.status()[0]?.pid;
  t.ok(pid && alive(pid));
  await r.close();
  t.notOk(alive(pid!), "process gone after close");
});

t.test("httpGet and tcpSocket probes run inside the namespace", { skip: needsRoot }, async (t) => {
  const { pod } = await onePodMesh(t);
  const env = [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }];
  const r = runner(t, {
    key: "demo/web-0",
    netnsPath: pod.netnsPath,
    ip: pod.ip,
    containers: [
      {
        name: "http",
        command: [node, "-e", httpServer(8080)],
        env,
        ports: [{ name: "web", containerPort: 8080 }],
        readinessProbe: { httpGet: { path: "/healthz", port: "web" } },
      },
      {
        name: "tcp",
        command: [node, "-e", httpServer(9090)],
        env,
        readinessProbe: { tcpSocket: { port: 9090 } },
      },
    ],
  });
  const ready = once(r, "ready");
  r.start();
  await ready;
  t.same(
    r.status().map((c) => [c.name, c.state, c.ready]),
    [
      ["http", "running", true],
      ["tcp", "running", true],
    ],
  );
  t.equal(
    await execInNetns(pod.netnsPath, ["sh", "-c", `ip -o addr | grep -q ${pod.ip}`], { stdio: "ignore" }),
    0,
    "exec runs in the pod",
  );
});

t.test("an httpGet probe answered with 500 keeps the pod unready", { skip: needsRoot }, async (t) => {
  const { pod, dir } = await onePodMesh(t);
  const r = runner(t, {
    key: "demo/web-0",
    netnsPath: pod.netnsPath,
    ip: pod.ip,
    logDir: dir,
    containers: [
      {
        name: "bad",
        command: [node, "-e", `${httpServer(8080, 500)}.on("listening", () => console.log("listening"))`],
        env: [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }],
        readinessProbe: { httpGet: { path: "/healthz", port: 8080 } },
      },
    ],
  });
  const log = path.join(dir, "bad.log");
  fs.writeFileSync(log, "");
  r.start();
  await waitForFile(log, (text) => text.includes("listening"));
  // The server answers; the probe still fails on its 500, every time.
  let ok = 0;
  for (let i = 0; i < 3; i++) {
    if (
      await runProbe({ httpGet: { path: "/healthz", port: 8080 } }, r.spec, {
        spec: r.spec.containers[0]!,
        env: {},
      })
    )
      ok++;
  }
  t.ok(
    await runProbe({ tcpSocket: { port: 8080 } }, r.spec, { spec: r.spec.containers[0]!, env: {} }),
    "it is listening",
  );
  t.equal(ok, 0, "a 500 fails the probe");
  t.notOk(r.ready);
});

t.test("a container with neither command nor args is refused, naming the field", async (t) => {
  t.throws(
    () =>
      new PodRunner({
        key: "demo/x",
        netnsPath: "/nonexistent",
        ip: "10.0.0.1",
        containers: [{ name: "c", image: "nginx" }],
      }),
    {
      code: "INVALID_FIELD",
      message: /Pod demo\/x: field spec.containers\[0\].command/,
    },
  );
});

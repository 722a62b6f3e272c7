// `ambit up` as a long-running thing: workloads expanded and spread over the
// nodes, errors in the directory named with file and field, the directory
// followed while the mesh runs (a new pod starts, a removed one stops, a
// label change flows through the controller), a second `up` refused,
// `--foreground` printing the access log and tearing down on Ctrl-C, and a
// clear message without privileges.
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import t from "tap";
import { ambit, testMeshDirs } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";

const cliMain = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const demoDir = path.join(process.cwd(), "examples", "demo");

interface Status {
  pods: { key: string; node: string; ip: string; ready: boolean; enrolled?: boolean; netns?: string }[];
}

const IDLE = "    spec:\n      containers:\n        - {name: idle, image: x, command: [sleep, infinity]}\n";

t.test(
  "up follows the directory; workloads spread; errors named; second up refused",
  { skip: needsRoot, timeout: 180_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "up");
    const { listNetns } = await import("../../local/network.js");
    const { readState } = await import("../../local/state.js");
    fs.writeFileSync(
      path.join(dir, "ns.yaml"),
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n  labels: {ambit.dev/dataplane-mode: ambient}\n",
    );
    fs.writeFileSync(
      path.join(dir, "web.yaml"),
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: app}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n${IDLE}`,
    );
    fs.writeFileSync(
      path.join(dir, "bad.yaml"),
      "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: app}\nspec:\n  ports: [{port: banana}]\n",
    );

    const up = await ambit(runDir, ["up", dir, "--mesh-id", meshId, "--timeout", "60"]);
    t.equal(up.code, 0, "ambit up succeeds", { stderr: up.stderr });
    t.match(up.stderr, /bad\.yaml/, "the broken file is named");
    t.match(up.stderr, /ports/, "... with the field");

    const pods = () => Object.values(readState(meshId)?.pods ?? {}).filter((p) => p.key.startsWith("app/"));
    const web = pods().filter((p) => p.key.startsWith("app/web-"));
    t.equal(web.length, 3, "the Deployment expands into 3 pods");
    t.same(
      web.map((p) => p.node).sort(),
      ["node-1", "node-1", "node-2"],
      "pods without spec.nodeName are spread over the nodes",
    );

    const second = await ambit(runDir, ["up", dir, "--mesh-id", meshId]);
    t.not(second.code, 0, "a second up of the same mesh is refused");
    t.match(second.stderr, /already up/, "... saying so");

    // Follow the state file's rewrites until pred holds.
    const stateDir = path.join(runDir, meshId);
    const until = async (pred: () => boolean, what: string) => {
      const watcher = fs.watch(stateDir);
      const timer = setTimeout(() => watcher.emit("change"), 30_000);
      const deadline = Date.now() + 30_000;
      try {
        while (!pred() && Date.now() < deadline) await once(watcher, "change");
      } finally {
        clearTimeout(timer);
        watcher.close();
      }
      t.ok(pred(), what);
    };

    fs.writeFileSync(
      path.join(dir, "extra.yaml"),
      `apiVersion: v1\nkind: Pod\nmetadata: {name: extra, namespace: app}\nspec:\n  nodeName: node-2\n  containers:\n    - {name: idle, image: x, command: [sleep, infinity]}\n`,
    );
    await until(
      () => Boolean(pods().find((p) => p.key === "app/extra")?.ready),
      "a pod added to the directory starts",
    );
    const extraNs = pods().find((p) => p.key === "app/extra")!.netns;
    t.ok(listNetns(extraNs).includes(extraNs), "... in its own namespace");

    const status = async () =>
      JSON.parse((await ambit(runDir, ["status", "--json", "--mesh-id", meshId])).stdout) as Status;
    t.equal(
      (await status()).pods.find((p) => p.key === "app/extra")?.enrolled,
      true,
      "the controller enrols it",
    );

    fs.rmSync(path.join(dir, "extra.yaml"));
    await until(() => !pods().some((p) => p.key === "app/extra"), "a pod removed from the directory stops");
    t.notOk(listNetns(extraNs).includes(extraNs), "... and its namespace is gone");

    // A label change flows through the controller alone (no pod restarts).
    fs.writeFileSync(path.join(dir, "ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n");
    let enrolled: (boolean | undefined)[] = [true];
    for (let i = 0; i < 50 && enrolled.some((e) => e !== false); i++) {
      enrolled = (await status()).pods.filter((p) => p.key.startsWith("app/web-")).map((p) => p.enrolled);
    }
    t.same(enrolled, [false, false, false], "removing the namespace label un-enrols its pods");
    t.same(
      pods()
        .filter((p) => p.key.startsWith("app/web-"))
        .map((p) => p.key)
        .sort(),
      web.map((p) => p.key).sort(),
      "... without restarting them",
    );

    const logs = await ambit(runDir, ["logs", "--mesh-id", meshId, "controller"]);
    t.match(logs.stdout, /controller ready/, "ambit logs controller shows the controller's log");

    const down = await ambit(runDir, ["down", "--mesh-id", meshId]);
    t.equal(down.code, 0, "ambit down");
    t.same(listNetns(`ambit-${meshId}-`), [], "nothing left");
  },
);

t.test(
  "--foreground prints the access log and tears down on Ctrl-C",
  { skip: needsRoot, timeout: 120_000 },
  async (t) => {
    const { runDir, meshId } = testMeshDirs(t, "fg");
    const { listNetns } = await import("../../local/network.js");
    const child = spawn(process.execPath, [cliMain, "up", demoDir, "--foreground", "--mesh-id", meshId], {
      env: { ...process.env, AMBIT_RUN_DIR: runDir, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    t.teardown(() => {
      child.kill("SIGKILL");
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = once(child, "exit");
    let accessLine: string | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      if (
        line.includes("spiffe://cluster.local/ns/demo/sa/client") &&
        line.includes("spiffe://cluster.local/ns/demo/sa/server")
      ) {
        accessLine = line;
        break;
      }
    }
    t.ok(accessLine, "an access-log line with both identities is printed", { stderr });
    child.kill("SIGINT");
    const [code] = await exited;
    t.equal(code, 0, "Ctrl-C ends it cleanly");
    t.same(listNetns(`ambit-${meshId}-`), [], "and the mesh is torn down");
    t.notOk(fs.existsSync(path.join(runDir, meshId, "state.json")), "state removed");
  },
);

t.test("without privileges: a clear message", { skip: needsRoot, timeout: 30_000 }, async (t) => {
  const r = await ambit(os.tmpdir(), ["up", demoDir, "--mesh-id", "tnopriv"], undefined, { uid: 65534 });
  t.not(r.code, 0, "up refuses");
  t.match(r.stderr, /root|CAP_NET_ADMIN/, "and says what it needs");
});

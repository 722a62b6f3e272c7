// The real ambit-cni executable (the shell wrapper running node on
// dist/cni/main.js) with CNI_* environment and config on stdin, against the
// node agent's real ZDS server on a Unix socket: ADD hands the pod over and
// passes prevResult through, refusals and silence fail the ADD, an absent
// agent fails open, DEL never fails.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { writeCniWrapper } from "../../cni/install.js";
import type { CniAdd, CniDel } from "../../ztunnel/node-agent/zds-codec.js";
import { type ZdsHandler, ZdsServer } from "../../ztunnel/node-agent/zds-server.js";

const mainJs = fileURLToPath(new URL("../../cni/main.js", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runPlugin(exe: string, env: Record<string, string>, stdin: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(exe, [], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const prevResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: "/var/run/netns/x" }],
  ips: [
    { address: "10.22.0.7/16", gateway: "10.22.0.1", interface: 0 },
    { address: "fd00::7/64", interface: 0 },
  ],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: "1.0.0", name: "podnet", type: "ambit-cni", prevResult, ...extra });
}

function podEnv(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "sandbox-1",
    CNI_NETNS: "/var/run/netns/ambit-tpod",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS:
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=sandbox-1;K8S_POD_UID=uid-123",
    ...extra,
  };
}

/** A temp dir with the wrapper and a socket path; a ZDS server whose handler the test sets. */
async function setup(t: Test) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cni-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const exe = await writeCniWrapper(path.join(dir, "bin"), { node: process.execPath, mainJs });
  const socketPath = path.join(dir, "run", "node-agent.sock");
  const adds: CniAdd[] = [];
  const dels: CniDel[] = [];
  let handler: ZdsHandler = {
    add: async (p) => {
      adds.push(p);
      return { captured: true };
    },
    del: async (p) => {
      dels.push(p);
    },
  };
  const server = new ZdsServer({
    socketPath,
    handler: { add: (p) => handler.add(p), del: (p) => handler.del(p) },
  });
  return {
    dir,
    exe,
    socketPath,
    adds,
    dels,
    server,
    setHandler(h: Partial<ZdsHandler>) {
      handler = { ...handler, ...h };
    },
    async start() {
      await server.start();
      t.teardown(() => server.close());
    },
  };
}

t.test("VERSION lists the supported versions", async (t) => {
  const s = await setup(t);
  const r = await runPlugin(s.exe, { CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: "0.4.0" }));
  t.equal(r.code, 0);
  const out = JSON.parse(r.stdout);
  t.equal(out.cniVersion, "0.4.0");
  t.ok(out.supportedVersions.includes("1.0.0"));
  t.ok(out.supportedVersions.includes("0.3.1"));
});

t.test("ADD hands the pod to the agent and passes prevResult through", async (t) => {
  const s = await setup(t);
  await s.start();
  const logFile = path.join(s.dir, "cni.log");
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath, logFile }));
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), prevResult, "stdout is prevResult, unchanged");
  t.equal(s.adds.length, 1);
  t.same(s.adds[0], {
    key: "shop/web-0",
    uid: "uid-123",
    name: "web-0",
    namespace: "shop",
    netnsPath: "/var/run/netns/ambit-tpod",
    ips: ["10.22.0.7", "fd00::7"],
    containerId: "sandbox-1",
    interface: "eth0",
  });
  const line = JSON.parse(fs.readFileSync(logFile, "utf8").trim());
  t.match(line, { command: "ADD", pod: "shop/web-0", captured: true, container: "sandbox-1" });
});

t.test("ADD prints the result in the configuration's version", async (t) => {
  const s = await setup(t);
  await s.start();
  const r = await runPlugin(
    s.exe,
    podEnv("ADD"),
    JSON.stringify({
      cniVersion: "0.4.0",
      name: "n",
      type: "ambit-cni",
      socketPath: s.socketPath,
      prevResult: { ...prevResult, cniVersion: "0.4.0" },
    }),
  );
  t.equal(r.code, 0);
  t.equal(JSON.parse(r.stdout).cniVersion, "0.4.0");
  t.same(JSON.parse(r.stdout).ips, prevResult.ips);
});

t.test("ADD refused by the agent fails with a CNI error naming the pod", async (t) => {
  const s = await setup(t);
  s.setHandler({
    add: async () => {
      throw new Error("iptables-restore: permission denied");
    },
  });
  await s.start();
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 1);
  const err = JSON.parse(r.stdout);
  t.equal(err.code, 100);
  t.equal(err.cniVersion, "1.0.0");
  t.match(err.msg, /shop\/web-0/);
  t.match(err.details, /iptables-restore: permission denied/);
});

t.test("ADD with no agent (no socket, or a dead socket file) fails open", async (t) => {
  const s = await setup(t);
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 0, r.stdout);
  t.same(JSON.parse(r.stdout), prevResult);
  // A socket path nobody listens on (connect: ECONNREFUSED).
  const dead = path.join(s.dir, "dead.sock");
  fs.writeFileSync(dead, "");
  const r2 = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: dead }));
  t.equal(r2.code, 0, r2.stdout);
  t.same(JSON.parse(r2.stdout), prevResult);
});

t.test("ADD with no agent fails closed for a namespace the agent's file lists", async (t) => {
  const s = await setup(t);
  const runDir = path.dirname(s.socketPath);
  fs.mkdirSync(runDir, { recursive: true });
  const file = path.join(runDir, "enrolled-namespaces.json");
  const write = (ns: string[]) => fs.writeFileSync(file, JSON.stringify({ namespaces: ns, updated: "" }));
  write(["shop", "ambit-system"]);
  // No socket: the pod of an enrolled namespace waits for ztunnel.
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 1, r.stdout);
  const err = JSON.parse(r.stdout);
  t.equal(err.code, 11);
  t.match(err.msg, /pod shop\/web-0 .*ztunnel is not running on this node/);
  // A dead socket file (ECONNREFUSED) beside the same file: closed too.
  const dead = path.join(runDir, "dead.sock");
  const refusing = net.createServer();
  await new Promise<void>((res) => refusing.listen(dead, res));
  await new Promise<void>((res) => refusing.close(() => res()));
  fs.writeFileSync(dead, "");
  const r2 = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: dead }));
  t.equal(r2.code, 1, r2.stdout);
  t.equal(JSON.parse(r2.stdout).code, 11);
  // Another namespace: open. ambit-system: never blocked, even when listed.
  const other = podEnv("ADD", { CNI_ARGS: "K8S_POD_NAMESPACE=plain;K8S_POD_NAME=a" });
  const r3 = await runPlugin(s.exe, other, conf({ socketPath: s.socketPath }));
  t.equal(r3.code, 0, r3.stdout);
  const mesh = podEnv("ADD", { CNI_ARGS: "K8S_POD_NAMESPACE=ambit-system;K8S_POD_NAME=ambit-controller-0" });
  const r4 = await runPlugin(s.exe, mesh, conf({ socketPath: s.socketPath }));
  t.equal(r4.code, 0, r4.stdout);
  // Unenrolled (the agent rewrote the file): open again.
  write([]);
  const r5 = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r5.code, 0, r5.stdout);
  t.same(JSON.parse(r5.stdout), prevResult);
  // A garbled file counts as absent (open).
  fs.writeFileSync(file, "{not json");
  const r6 = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r6.code, 0, r6.stdout);
  // The agent running: it decides, the file is not read.
  write(["shop"]);
  await s.start();
  const r7 = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r7.code, 0, r7.stdout);
  t.equal(s.adds.length, 1);
});

t.test("ADD fails (try again later) when the agent accepts but never answers", async (t) => {
  const s = await setup(t);
  fs.mkdirSync(path.dirname(s.socketPath), { recursive: true });
  const silent = net.createServer(() => {});
  const conns: net.Socket[] = [];
  silent.on("connection", (c) => conns.push(c));
  await new Promise<void>((r) => silent.listen(s.socketPath, r));
  t.teardown(() => {
    for (const c of conns) c.destroy();
    silent.close();
  });
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath, timeoutSeconds: 0.5 }));
  t.equal(r.code, 1);
  const err = JSON.parse(r.stdout);
  t.equal(err.code, 11);
  t.match(err.details, /did not answer within 500 ms/);
});

t.test("ADD of something that is not a Kubernetes pod passes through without asking", async (t) => {
  const s = await setup(t);
  await s.start();
  const r = await runPlugin(
    s.exe,
    podEnv("ADD", { CNI_ARGS: "IgnoreUnknown=1" }),
    conf({ socketPath: s.socketPath }),
  );
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), prevResult);
  t.equal(s.adds.length, 0);
});

t.test("ADD as the first plugin (no prevResult) prints an empty result", async (t) => {
  const s = await setup(t);
  await s.start();
  const r = await runPlugin(
    s.exe,
    podEnv("ADD"),
    JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "ambit-cni", socketPath: s.socketPath }),
  );
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), { cniVersion: "1.0.0", interfaces: [], ips: [] });
  t.same(s.adds[0]?.ips, []);
});

t.test("DEL tells the agent and never fails", async (t) => {
  const s = await setup(t);
  await s.start();
  const r = await runPlugin(s.exe, podEnv("DEL"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 0);
  t.equal(r.stdout, "");
  t.same(s.dels, [
    {
      key: "shop/web-0",
      uid: "uid-123",
      name: "web-0",
      namespace: "shop",
      containerId: "sandbox-1",
      netnsPath: "/var/run/netns/ambit-tpod",
    },
  ]);
  s.setHandler({
    del: async () => {
      throw new Error("namespace gone");
    },
  });
  const r2 = await runPlugin(s.exe, podEnv("DEL", { CNI_NETNS: "" }), conf({ socketPath: s.socketPath }));
  t.equal(r2.code, 0, "an agent error does not fail DEL");
  const r3 = await runPlugin(s.exe, podEnv("DEL"), conf({ socketPath: path.join(s.dir, "none.sock") }));
  t.equal(r3.code, 0, "an absent agent does not fail DEL");
});

t.test("CHECK succeeds without output", async (t) => {
  const s = await setup(t);
  const r = await runPlugin(s.exe, podEnv("CHECK"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 0);
  t.equal(r.stdout, "");
});

t.test("bad input is a CNI error with the spec's code", async (t) => {
  const s = await setup(t);
  const notJson = await runPlugin(s.exe, podEnv("ADD"), "{nope");
  t.equal(notJson.code, 1);
  t.equal(JSON.parse(notJson.stdout).code, 6);
  const version = await runPlugin(s.exe, podEnv("ADD"), conf({ cniVersion: "0.1.0" }));
  t.equal(JSON.parse(version.stdout).code, 1);
  const noNetns = await runPlugin(
    s.exe,
    podEnv("ADD", { CNI_NETNS: "" }),
    conf({ socketPath: s.socketPath }),
  );
  t.equal(JSON.parse(noNetns.stdout).code, 4);
  t.match(JSON.parse(noNetns.stdout).msg, /CNI_NETNS/);
  const badField = await runPlugin(s.exe, podEnv("ADD"), conf({ timeoutSeconds: "soon" }));
  t.equal(JSON.parse(badField.stdout).code, 7);
  t.match(JSON.parse(badField.stdout).msg, /timeoutSeconds/);
  const badCommand = await runPlugin(s.exe, podEnv("FROB"), conf());
  t.equal(JSON.parse(badCommand.stdout).code, 4);
});

t.test("the ZDS server answers a malformed request with an error ack and serves the next", async (t) => {
  const s = await setup(t);
  await s.start();
  const { decodeResponse, frame } = await import("../../cni/wire.js");
  const sock = net.connect(s.socketPath);
  t.teardown(() => sock.destroy());
  const got = new Promise<Buffer>((resolve) => sock.once("data", resolve));
  sock.write(frame(Buffer.from([0x0a, 0x02, 0x0a, 0x00]))); // add { pod {} }: no netns path
  const reply = await got;
  const ack = decodeResponse(reply.subarray(4));
  t.match(ack.error, /field netns_path: required/);
  const r = await runPlugin(s.exe, podEnv("ADD"), conf({ socketPath: s.socketPath }));
  t.equal(r.code, 0);
  t.equal(s.adds.length, 1);
});

// The local mesh end to end, as a user drives it: `ambit up` on a fixture
// directory (two nodes, an enrolled namespace and a plain one), then
// connections from inside pods with `ambit exec`, a capture on the fabric
// bridge between the nodes, a DENY policy added while the mesh runs, a
// ztunnel killed mid-test, and `ambit down` leaving nothing behind.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { ambit, CLIENT, testMeshDirs, writeMeshFixture } from "./mesh-fixture.js";
import { needsRoot } from "./netns-fixture.js";


interface PodStatus {
  key: string;
  ip: string;
  node: string;
  ready: boolean;
  enrolled?: boolean;
  identity?: string;
}

interface Status {
  pods: PodStatus[];
  services: { hostname: string; vips: string[] }[];
  nodes: { name: string; ztunnel: { ready: boolean; restarts: number } }[];
}

t.test(
  "two-node local mesh: mTLS across nodes, plain outside, DENY, ztunnel restart, down",
  { skip: needsRoot, timeout: 240_000 },
  async (t) => {
    const { runDir, dir, meshId } = testMeshDirs(t, "e2e");
    const prefix = `ambit-${meshId}-`;
    const { listNetns } = await import("../../local/network.js");
    writeMeshFixture(dir);

    const up = await ambit(runDir, ["up", dir, "--nodes", "2", "--mesh-id", meshId, "--timeout", "90"]);
    t.equal(up.code, 0, "ambit up succeeds", { stderr: up.stderr });
    t.match(up.stderr, /ztunnel-node-1 ready/, "progress names the ztunnels");

    const statusNow = async (): Promise<Status> => {
      const r = await ambit(runDir, ["status", "--json", "--mesh-id", meshId]);
      t.equal(r.code, 0, "ambit status --json");
      return JSON.parse(r.stdout) as Status;
    };
    const status = await statusNow();
    const pod = (key: string) => {
      const p = status.pods.find((x) => x.key === key);
      if (!p) throw new Error(`no pod ${key} in ${JSON.stringify(status.pods.map((x) => x.key))}`);
      return p;
    };
    t.match(pod("mesh/server"), {
      node: "node-2",
      ready: true,
      enrolled: true,
      identity: "spiffe://cluster.local/ns/mesh/sa/server",
    });
    t.match(pod("mesh/client"), {
      node: "node-1",
      ready: true,
      enrolled: true,
      identity: "spiffe://cluster.local/ns/mesh/sa/client",
    });
    t.match(pod("plain/server"), { node: "node-2", ready: true, enrolled: false });
    t.match(pod("plain/client"), { node: "node-1", enrolled: false });
    t.match(pod("mesh/server").ip, /^10\.213\.2\./, "the controller sees the pod's IP on node-2's range");
    const vip = status.services.find((s) => s.hostname === "server.mesh.svc.cluster.local")?.vips[0];
    t.ok(vip, "the Service has a VIP");

    const call = async (from: string, host: string, port: number, msg: string) => {
      const r = await ambit(runDir, [
        "exec",
        "--mesh-id",
        meshId,
        from,
        "--",
        "node",
        "-e",
        CLIENT,
        host,
        String(port),
        msg,
      ]);
      t.equal(r.code, 0, `ambit exec ${from} runs`, { stderr: r.stderr });
      return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { out: string; error?: string };
    };

    // ---- capture on the bridge between the nodes (the control plane's own traffic left out) ----
    const fabric = `${prefix}fabric`;
    const capture = async () => {
      const file = path.join(runDir, `cap-${Date.now()}.pcap`);
      const proc: ChildProcess = spawn(
        "ip",
        [
          "netns",
          "exec",
          fabric,
          "tcpdump",
          "-i",
          "br0",
          "--immediate-mode",
          "-U",
          "-n",
          "-w",
          file,
          "tcp and not host 10.213.0.2",
        ],
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      t.teardown(() => {
        proc.kill("SIGKILL");
      });
      let err = "";
      await new Promise<void>((resolve, reject) => {
        proc.stderr!.on("data", (d: Buffer) => {
          err += d.toString();
          if (err.includes("listening on")) resolve();
        });
        proc.on("exit", () => reject(new Error(`tcpdump exited: ${err}`)));
      });
      return {
        /**
         * Stops once the sentinel (plain text sent last) is in the file: every
         * packet before it is written by then, so an absence means something.
         */
        async stopAfter(sentinel: string): Promise<{ bytes: Buffer; lines: string[] }> {
          const watcher = fs.watch(file);
          const timer = setTimeout(() => watcher.emit("change"), 10_000);
          try {
            const deadline = Date.now() + 10_000;
            while (!fs.readFileSync(file).includes(sentinel) && Date.now() < deadline)
              await once(watcher, "change");
          } finally {
            clearTimeout(timer);
            watcher.close();
          }
          const exited = once(proc, "exit");
          proc.kill("SIGINT");
          await exited;
          const read = await new Promise<string>((resolve) =>
            execFile("tcpdump", ["-n", "-r", file], (_e, out) => resolve(out)),
          );
          return { bytes: fs.readFileSync(file), lines: read.split("\n").filter((l) => l.includes(" IP ")) };
        },
      };
    };

    const marker = `AMBIT-SECRET-${meshId}`;
    const plainMarker = `AMBIT-PLAIN-${meshId}`;
    let cap = await capture();
    const byName = await call("mesh/client", "server.mesh", 80, `${marker}-name`);
    t.match(byName.out, `echo:${marker}-name`, "a pod reaches the Service on the other node by name");
    const byVip = await call("mesh/client", vip!, 80, `${marker}-vip`);
    t.match(byVip.out, `echo:${marker}-vip`, "... and by VIP");
    const plain = await call("plain/client", pod("plain/server").ip, 8080, plainMarker);
    t.match(plain.out, `echo:${plainMarker}`, "a pod in an unlabelled namespace talks plain and directly");
    const lookup = await ambit(runDir, [
    "exec",
    "--mesh-id",
    meshId,
    "plain/client",
    "--",
    "node",
    "-e",
    "require('dns').lookup(process.argv[1], (e, a) => console.log(e ? e.code : a))",
    "server.mesh",
  ]);
  t.equal(lookup.stdout.trim(), vip, "a pod outside the mesh resolves Service names too");
  let seen = await cap.stopAfter(plainMarker);
    t.notOk(
      seen.bytes.includes(marker),
      "no application byte of the mesh pods crossed the link in the clear",
    );
    t.ok(seen.bytes.includes(plainMarker), "the capture does see plain text (the plain namespace's)");
    const meshLines = seen.lines.filter(
      (l) => !l.includes(`${pod("plain/server").ip}.8080`) && !l.includes(`> ${pod("plain/server").ip}.8080`),
    );
    t.ok(meshLines.length > 0, "the mesh connections crossed the link");
    t.same(
      meshLines.filter((l) => !/\.15008[ :]/.test(l)),
      [],
      "every packet of the mesh pods between the nodes is HBONE (port 15008)",
    );

    // ---- an AuthorizationPolicy DENY added while the mesh is up ----
    const policyFile = path.join(dir, "deny.yaml");
    fs.writeFileSync(
      policyFile,
      [
        "apiVersion: ambit.dev/v1alpha1",
        "kind: AuthorizationPolicy",
        "metadata: {name: deny-client, namespace: mesh}",
        "spec:",
        "  selector: {matchLabels: {app: server}}",
        "  action: DENY",
        "  rules:",
        "    - from: [{source: {principals: [cluster.local/ns/mesh/sa/client]}}]",
        "",
      ].join("\n"),
    );
    // The policy travels file → controller → xDS → ztunnel; each attempt is a real connection.
    let denied: { out: string; error?: string } | undefined;
    for (let i = 0; i < 40 && !denied; i++) {
      const r = await call("mesh/client", "server.mesh", 80, `${marker}-deny`);
      if (!r.out.includes("echo:")) denied = r;
    }
    t.ok(denied, "the DENY policy closes the client's connections");
    const metrics = async (node: string) => {
      const { adminGet } = await import("../../local/supervisor-logs.js");
      const sock = path.join(runDir, meshId, "nodes", node, "ztunnel.sock");
      return (await adminGet(sock, "/metrics")).body;
    };
    t.match(
      await metrics("node-2"),
      /ambit_authz_denials_total\{[^}]*\} [1-9]/,
      "the denial is counted by the server's ztunnel",
    );
    fs.rmSync(policyFile);
    let allowed = false;
    for (let i = 0; i < 40 && !allowed; i++)
      allowed = (await call("mesh/client", "server.mesh", 80, `${marker}-again`)).out.includes("echo:");
    t.ok(allowed, "removing the policy file lets the client in again");

    // ---- ztunnel killed mid-test: the supervisor restarts it, capture is intact ----
    const { readState, processStartTime } = await import("../../local/state.js");
    const ztProc = (node: string) =>
      readState(meshId)?.processes.find((p) => p.name === `ambit-system/ztunnel-${node}/ztunnel`);
    const before = ztProc("node-1");
    t.ok(before, "the state file records ztunnel-node-1's process");
    process.kill(before!.pid, "SIGKILL");
    // Wait for the restarted process to be ready, woken by the state file's rewrites.
    const stateDir = path.join(runDir, meshId);
    const watcher = fs.watch(stateDir);
    try {
      for (;;) {
        const s = readState(meshId);
        const p = ztProc("node-1");
        if (
          p &&
          p.pid !== before!.pid &&
          processStartTime(p.pid) &&
          s?.pods["ambit-system/ztunnel-node-1"]?.ready
        )
          break;
        await once(watcher, "change");
      }
    } finally {
      watcher.close();
    }
    cap = await capture();
    const afterName = await call("mesh/client", "server.mesh", 80, `${marker}-restart`);
    t.match(afterName.out, `echo:${marker}-restart`, "after the restart, new connections by name work");
    const afterIp = await call("mesh/client", pod("mesh/server").ip, 8080, `${marker}-restart-ip`);
    t.match(afterIp.out, `echo:${marker}-restart-ip`, "... and to the pod IP");
    const sentinel = `${plainMarker}-restart`;
    t.match(
      (await call("plain/client", pod("plain/server").ip, 8080, sentinel)).out,
      sentinel,
      "plain traffic still flows",
    );
    seen = await cap.stopAfter(sentinel);
    t.ok(seen.bytes.includes(sentinel), "the capture saw the plain sentinel sent last");
    t.notOk(
      seen.bytes.includes(marker),
      "capture is intact after the restart: still no application bytes on the link",
    );
    t.ok(
      seen.lines.some((l) => /\.15008[ :]/.test(l)),
      "... the connections went over HBONE",
    );
    const after = await statusNow();
    t.ok(
      (after.nodes.find((n) => n.name === "node-1")?.ztunnel.restarts ?? 0) >= 1,
      "status counts the ztunnel restart",
    );

    // ---- down leaves nothing behind ----
    const down = await ambit(runDir, ["down", "--mesh-id", meshId]);
    t.equal(down.code, 0, "ambit down succeeds", { stderr: down.stderr });
    t.same(listNetns(prefix), [], "no namespace of the mesh is left");
    t.notOk(fs.existsSync(stateDir), "the state directory is removed");
    const again = await ambit(runDir, ["status", "--mesh-id", meshId]);
    t.equal(again.code, 1, "status says no mesh is up");
  },
);

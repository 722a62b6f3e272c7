// What an attacker holding a pod cannot do, tried from real pod network
// namespaces (two nodes, in-pod capture, ztunnels in this process):
//  - reach another pod's ztunnel ports (admin 15000, metrics 15020,
//    readiness 15021, and the in-pod listeners 15001/15006/15008/15053);
//  - reach an enrolled STRICT pod from an unenrolled pod (and the same pod
//    was reachable while PERMISSIVE, so the check can fail);
//  - bypass capture with a marked socket without CAP_NET_ADMIN: an
//    unprivileged process cannot set SO_MARK, and its connection is carried
//    over mTLS (a STRICT server admits it); a privileged one can set the mark
//    and so skips its own capture, and the STRICT server refuses that plain
//    text (the caveat SECURITY.md states).
import { execFile } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import { createRequire } from "node:module";
import type net from "node:net";
import { join } from "node:path";
import t from "tap";
import { ZTUNNEL_MARK } from "../../ztunnel/node-agent/capture.js";
import { connectInNetns } from "../../ztunnel/node-agent/native.js";
import { needsRoot, serveIn } from "./netns-fixture.js";
import { inProcessMesh, twoNodeDemoYaml } from "./ztunnel-fixture.js";

const VIP = "10.96.7.9";

function meshYaml(ips: Record<string, string>): string {
  return twoNodeDemoYaml(ips, { vip: VIP, portName: "tcp", outsider: true });
}

const STRICT = `
apiVersion: ambit.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: strict-server, namespace: demo }
spec:
  selector: { matchLabels: { app: server } }
  mtls: { mode: STRICT }
`;

/** Sends `msg` and resolves with what came back before the close ("" when refused or reset). */
async function exchange(netnsPath: string, host: string, port: number, msg: string): Promise<string> {
  let s: net.Socket;
  try {
    s = await connectInNetns(netnsPath, { host, port, timeoutMs: 5000 });
  } catch {
    return "";
  }
  return new Promise((resolve) => {
    let got = "";
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.includes(msg)) s.end();
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.write(msg);
  });
}

// The unprivileged pod process: tries SO_MARK, then talks to the server without it.
const MARK_PROBE = `
const [koffiPath, host, port, mark] = process.argv.slice(2);
const koffi = require(koffiPath);
const net = require("net");
const c = koffi.load("libc.so.6");
const socket = c.func("int socket(int, int, int)");
const setsockopt = c.func("int setsockopt(int, int, int, void *, uint32_t)");
const close = c.func("int close(int)");
const fd = socket(2, 1, 0);
const v = Buffer.alloc(4);
v.writeInt32LE(Number(mark));
const rc = setsockopt(fd, 1, 36, v, 4);
const errno = rc < 0 ? koffi.errno() : 0;
close(fd);
const s = net.connect({ host, port: Number(port) });
let out = "";
const done = (error) => { console.log(JSON.stringify({ uid: process.getuid(), markRc: rc, errno, out, error })); process.exit(0); };
s.setTimeout(5000, () => done("timeout"));
s.on("connect", () => s.write("unprivileged"));
s.on("data", (d) => { out += d; if (out.includes("unprivileged")) s.end(); });
s.on("close", () => done());
s.on("error", (e) => done(e.code || e.message));
`;

t.test(
  "a pod cannot reach other pods' ztunnel ports, an unenrolled pod cannot reach a STRICT pod, a marked socket needs CAP_NET_ADMIN",
  { skip: needsRoot, timeout: 180_000 },
  async (t) => {
    const m = await inProcessMesh(t, {
      nodes: ["node1", "node2"],
      pods: [
        { key: "demo/client", node: "node1" },
        { key: "demo/server", node: "node2" },
        { key: "plain/outsider", node: "node1" },
      ],
      yaml: meshYaml,
    });
    const client = m.pods["demo/client"]!;
    const server = m.pods["demo/server"]!;
    const outsider = m.pods["plain/outsider"]!;
    await m.startZtunnel("node1");
    await m.startZtunnel("node2");
    await serveIn(t, server.netnsPath, 8080, (s) => s.on("data", (d) => s.write(`echo:${d}`)));

    // Baseline: the paths work, so a refusal below is the property, not a broken mesh.
    t.equal(
      await exchange(client.netnsPath, VIP, 80, "hi"),
      "echo:hi",
      "enrolled client → server over HBONE",
    );
    t.equal(
      await exchange(outsider.netnsPath, server.ip, 8080, "plain"),
      "echo:plain",
      "unenrolled → PERMISSIVE server: allowed",
    );

    t.test("another pod's ztunnel ports answer nothing", async (t) => {
      const probe = "GET / HTTP/1.0\r\n\r\n";
      for (const port of [15000, 15020, 15021, 15001, 15006, 15008, 15053]) {
        t.equal(
          await exchange(client.netnsPath, server.ip, port, probe),
          "",
          `enrolled pod → other pod's :${port}`,
        );
        t.equal(
          await exchange(outsider.netnsPath, server.ip, port, probe),
          "",
          `unenrolled pod → other pod's :${port}`,
        );
      }
      for (const port of [15000, 15020, 15021]) {
        t.equal(
          await exchange(client.netnsPath, "127.0.0.1", port, probe),
          "",
          `nothing on the pod's own 127.0.0.1:${port}`,
        );
      }
    });

    t.test("an unenrolled pod cannot reach a STRICT pod; the enrolled one still can", async (t) => {
      const synced = once(m.controller, "synced");
      fs.writeFileSync(join(m.cfgDir, "strict.yaml"), STRICT);
      await synced;
      // The ztunnel applies the pushed policy a moment later.
      let refused = false;
      for (let i = 0; i < 100 && !refused; i++) {
        refused = (await exchange(outsider.netnsPath, server.ip, 8080, "plain")) === "";
        if (!refused) await new Promise((r) => setTimeout(r, 50));
      }
      t.ok(refused, "plain text from the unenrolled pod is refused once STRICT is in force");
      t.equal(await exchange(outsider.netnsPath, VIP, 80, "plain"), "", "... through the Service VIP too");
      t.equal(
        await exchange(client.netnsPath, VIP, 80, "mtls"),
        "echo:mtls",
        "the enrolled client still gets through (mTLS)",
      );
    });

    t.test(
      "a marked socket: unprivileged cannot set the mark and is captured; privileged bypasses capture and STRICT refuses it",
      async (t) => {
        const koffiPath = createRequire(import.meta.url).resolve("koffi");
        const script = `/tmp/ambit-sec-mark-${process.pid}.cjs`;
        fs.writeFileSync(script, MARK_PROBE, { mode: 0o644 });
        t.teardown(() => fs.rmSync(script, { force: true }));
        const out = await new Promise<string>((resolve, reject) =>
          execFile(
            "nsenter",
            [
              `--net=${client.netnsPath}`,
              "--",
              ...[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
              ],
              ...[process.execPath, script, koffiPath, server.ip, "8080", String(ZTUNNEL_MARK)],
            ],
            { timeout: 30_000 },
            (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout)),
          ),
        );
        const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as {
          uid: number;
          markRc: number;
          errno: number;
          out: string;
          error?: string;
        };
        t.equal(r.uid, 65534, "the probe ran as an unprivileged user inside the pod");
        t.equal(r.markRc, -1, "setsockopt(SO_MARK) failed");
        t.equal(r.errno, 1, "... with EPERM (it needs CAP_NET_ADMIN)");
        t.equal(
          r.out,
          "echo:unprivileged",
          "its connection to the STRICT server succeeded, so it was captured and carried over mTLS",
        );

        // A privileged process in the pod (this test, root) can set the mark: its
        // connection skips the pod's capture and arrives in plain text, which the
        // STRICT destination refuses.
        let marked: net.Socket | undefined;
        try {
          marked = await connectInNetns(client.netnsPath, {
            host: server.ip,
            port: 8080,
            mark: ZTUNNEL_MARK,
            timeoutMs: 5000,
          });
        } catch {
          marked = undefined;
        }
        let got = "";
        if (marked) {
          const s = marked;
          got = await new Promise<string>((resolve) => {
            let data = "";
            const timer = setTimeout(() => s.destroy(), 5000);
            s.on("data", (d: Buffer) => {
              data += d.toString();
            });
            s.on("error", () => undefined);
            s.on("close", () => {
              clearTimeout(timer);
              resolve(data);
            });
            s.write("marked");
          });
        }
        t.equal(
          got,
          "",
          "a marked (privileged) socket bypasses the source's capture and the STRICT server refuses its plain text",
        );
      },
    );
  },
);

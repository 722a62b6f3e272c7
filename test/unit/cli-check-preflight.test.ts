// `ambit check`'s preflight judgements (pure: from what was found to a line
// and what to do), the waypoint health lines against a real admin server on
// a Unix socket, and the progress line (terminal vs not).
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import t from "tap";
import {
  CNI_REQUIRED,
  checkCaptureProbe,
  checkCni,
  checkIptablesVersion,
  checkKernel,
  checkNode,
  checkPort,
  checkRoot,
} from "../../cli/check/preflight.js";
import { waypointHealth } from "../../cli/commands/check.js";
import { meshProgress, Progress } from "../../cli/progress.js";

t.test("versions", async (t) => {
  t.match(checkKernel("6.1.0-18-amd64"), { ok: true, name: "kernel 6.1.0-18-amd64" });
  t.match(checkKernel("5.4.0"), { ok: true });
  t.match(checkKernel("4.19.0-26-amd64"), {
    ok: false,
    detail: /older than 5\.4/,
    fix: /Linux 5\.4 or later/,
  });
  t.match(checkKernel("weird"), { ok: false, detail: /unreadable/ });
  t.match(checkNode("v20.11.1"), { ok: true, name: "Node.js 20.11.1" });
  t.match(checkNode("18.19.0"), { ok: false, fix: /Node\.js 20 or later/ });
  t.match(checkIptablesVersion("iptables v1.8.9 (nf_tables)\n"), {
    ok: true,
    name: "iptables 1.8.9 (nf_tables)",
  });
  t.match(checkIptablesVersion("iptables v1.8.7 (legacy)"), { ok: true, name: "iptables 1.8.7 (legacy)" });
  t.match(checkIptablesVersion("iptables v1.6.1"), { ok: false, name: /legacy/, fix: /1\.8 or later/ });
  t.match(checkIptablesVersion(undefined), { ok: false, fix: /apt-get install iptables/ });
  t.match(checkRoot(0), { ok: true });
  t.match(checkRoot(1000), { ok: false, fix: /sudo/ });
});

t.test("CNI plugins: Debian's /usr/lib/cni or /opt/cni/bin", async (t) => {
  const all = [...CNI_REQUIRED, "portmap", "firewall"];
  t.match(checkCni({ "/opt/cni/bin": undefined, "/usr/lib/cni": all }), {
    ok: true,
    name: /CNI plugins in \/usr\/lib\/cni/,
  });
  t.match(checkCni({ "/opt/cni/bin": all, "/usr/lib/cni": undefined }), {
    ok: true,
    name: /\/opt\/cni\/bin/,
  });
  // An empty /opt/cni/bin (a kubelet made it) does not hide Debian's plugins.
  t.match(checkCni({ "/opt/cni/bin": [], "/usr/lib/cni": all }), { ok: true, name: /\/usr\/lib\/cni/ });
  const none = checkCni({ "/opt/cni/bin": undefined, "/usr/lib/cni": undefined });
  t.match(none, {
    ok: false,
    detail: /none of \/opt\/cni\/bin, \/usr\/lib\/cni exists/,
    fix: /containernetworking-plugins/,
  });
  const partial = checkCni({ "/opt/cni/bin": ["bridge"], "/usr/lib/cni": undefined });
  t.match(partial, { ok: false, detail: "/opt/cni/bin lacks host-local, loopback" });
});

t.test("ports and the capture probe", async (t) => {
  t.match(checkPort(15010, true), { ok: true, name: "port 15010 free on 127.0.0.1" });
  t.match(checkPort(15012, false), { ok: false, fix: /ss -ltnp 'sport = :15012'/ });
  t.match(checkCaptureProbe(undefined), { ok: true });
  const noConnmark = checkCaptureProbe(
    "iptables-restore v1.8.9 (nf_tables): Couldn't load target `CONNMARK':No such file or directory\n\nError occurred at line: 14",
  );
  t.match(noConnmark, {
    ok: false,
    detail: /Couldn't load target `CONNMARK'/,
    fix: /modprobe xt_connmark/,
  });
  t.match(checkCaptureProbe("ip: RTNETLINK answers: Operation not permitted"), {
    ok: false,
    detail: /Operation not permitted/,
    fix: /modprobe/,
  });
});

t.test("waypoint health from its admin port", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cli-check-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dumps: Record<string, unknown> = {
    good: {
      xds: {
        connected: true,
        perType: { "type.googleapis.com/ambit.v1.WaypointService": { acked: 3, nacked: 0, resources: 2 } },
      },
      services: [{}, {}],
    },
    nacked: {
      xds: {
        connected: true,
        perType: {
          "type.googleapis.com/ambit.v1.WaypointService": {
            acked: 1,
            nacked: 2,
            resources: 1,
            lastError: "shop/reviews: route HTTPRoute/shop/reviews/rule/0: invalid regex",
          },
        },
      },
      services: [],
    },
    offline: { xds: { connected: false, perType: {} }, services: [] },
  };
  const targets: Record<string, { socket: string }> = {};
  for (const [name, body] of Object.entries(dumps)) {
    const socket = path.join(dir, `${name}.sock`);
    const server = http.createServer((req, res) => {
      if (req.url === "/config_dump") res.writeHead(200).end(JSON.stringify(body));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(socket, r));
    t.teardown(() => new Promise((r) => server.close(r)));
    targets[`shop/${name}`] = { socket };
  }
  targets["shop/gone"] = { socket: path.join(dir, "gone.sock") };
  const rs = await waypointHealth(targets);
  t.match(
    rs.find((r) => r.name.startsWith("waypoint shop/good")),
    {
      ok: true,
      name: "waypoint shop/good connected, 2 services, no NACKs",
    },
  );
  t.match(
    rs.find((r) => r.name.startsWith("waypoint shop/nacked")),
    {
      ok: false,
      name: "waypoint shop/nacked applied ambit.v1.WaypointService",
      detail: /2 NACK\(s\): .*invalid regex/,
      fix: /last good configuration/,
    },
  );
  t.match(
    rs.find((r) => r.name.startsWith("waypoint shop/offline")),
    { ok: false, name: "waypoint shop/offline connected" },
  );
  t.match(
    rs.find((r) => r.name.startsWith("waypoint shop/gone")),
    {
      ok: false,
      name: "waypoint shop/gone admin",
      detail: /does not answer/,
    },
  );
  t.equal(rs.filter((r) => r.ok).length, 1, "only the good one is healthy");
});

function capture(tty: boolean): {
  stream: PassThrough & { isTTY?: boolean; columns?: number };
  text: () => string;
} {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  stream.isTTY = tty;
  stream.columns = 80;
  let out = "";
  stream.on("data", (d: Buffer) => (out += d.toString()));
  return { stream, text: () => out };
}

t.test("progress: a status line on a terminal, plain lasting lines otherwise", async (t) => {
  const lines = [
    "starting the controller",
    "starting 2 ztunnels",
    "ztunnel-node-1 ready",
    "pod shop/web on node-1 at 10.213.1.2",
    "pod shop/web ready",
    "warning: pod shop/x: no DNS",
  ];
  const plain = capture(false);
  const p1 = new Progress({ stream: plain.stream, indent: "  " });
  const feed1 = meshProgress(p1);
  for (const l of lines) feed1(l);
  p1.done();
  t.equal(plain.text(), lines.map((l) => `  ${l}\n`).join(""), "not a terminal: every line, no escape codes");

  let now = 1_000;
  const term = capture(true);
  const p2 = new Progress({ stream: term.stream, indent: "  ", now: () => now });
  const feed2 = meshProgress(p2);
  for (const l of lines) feed2(l);
  now += 3_000;
  t.match(p2.render(), /^\S pods 1\/1 ready: pod shop\/web ready \(3s\)$/);
  p2.done();
  const out = term.text();
  t.ok(out.includes("\r\x1b[2K"), "the status line is redrawn in place");
  for (const l of [
    "starting the controller",
    "starting 2 ztunnels",
    "ztunnel-node-1 ready",
    "warning: pod shop/x: no DNS",
  ])
    t.match(out, `  ${l}\n`, `'${l}' stays`);
  t.notMatch(out, /\n {2}pod shop\/web on node-1/, "per-pod lines are not printed as lines");
  t.ok(out.endsWith("\r\x1b[2K"), "done() leaves a clean line");
  // A narrow terminal cuts the text, never the seconds.
  term.stream.columns = 30;
  const p3 = new Progress({ stream: term.stream, tty: true, now: () => now });
  p3.status("pods 3/9 ready: pod shop/a-very-long-name-indeed ready");
  t.match(p3.render(), /^\S pods 3\/9 ready: pod s… \(0s\)$/);
  t.ok(p3.render().length <= 29, "fits the terminal");
  p3.done();
});

// Helpers for the netns tier: unique `ambit-t<random>-` prefixes, a pair of
// namespaces joined by a veth, servers inside namespaces, and reading a
// socket to its end. Everything a helper creates is removed in teardown,
// also when the test fails.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import type { Test } from "tap";
import { destroyMeshNetwork, listNetns, meshPrefix } from "../../local/network.js";
import { runCommand } from "../../ztunnel/node-agent/command.js";
import { hasNetnsPrivileges, listenInNetns } from "../../ztunnel/node-agent/native.js";

/** tap's skip reason when this process cannot manage namespaces, else false. */
export const needsRoot: string | false = hasNetnsPrivileges()
  ? false
  : "needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN)";

const issued = new Set<string>();

// Last resort when a test is stopped (tap's timeout sends SIGALRM) before its
// teardown ran: end the processes in the namespaces and remove them,
// synchronously, on the way out.
function cleanupSync(): void {
  for (const id of issued) {
    for (const ns of listNetns(meshPrefix(id))) {
      const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "";
      for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) {
        if (pid !== process.pid) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        }
      }
      spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    }
  }
}
process.on("exit", cleanupSync);
process.on("SIGALRM", cleanupSync);

/** A fresh mesh id `t<random>`: its namespaces are `ambit-t<random>-*`, removed at exit at the latest. */
export function testMeshId(): string {
  const id = `t${randomBytes(4).toString("hex")}`;
  issued.add(id);
  return id;
}

export interface NetnsPair {
  meshId: string;
  a: { name: string; path: string; ip: string };
  b: { name: string; path: string; ip: string };
}

/** Two namespaces `ambit-t<id>-a` (10.77.0.1) and `-b` (10.77.0.2) joined by a veth; removed at teardown. */
export async function netnsPair(t: Test): Promise<NetnsPair> {
  const meshId = testMeshId();
  t.teardown(() => destroyMeshNetwork(meshId, { graceMs: 500 }).then(() => undefined));
  const a = { name: `ambit-${meshId}-a`, path: `/var/run/netns/ambit-${meshId}-a`, ip: "10.77.0.1" };
  const b = { name: `ambit-${meshId}-b`, path: `/var/run/netns/ambit-${meshId}-b`, ip: "10.77.0.2" };
  const script = [
    `ip netns add ${a.name}`,
    `ip netns add ${b.name}`,
    `ip -n ${a.name} link add eth0 type veth peer name eth0 netns ${b.name}`,
    `ip -n ${a.name} addr add ${a.ip}/24 dev eth0`,
    `ip -n ${b.name} addr add ${b.ip}/24 dev eth0`,
    ...[a.name, b.name].flatMap((n) => [`ip -n ${n} link set lo up`, `ip -n ${n} link set eth0 up`]),
  ].join("\n");
  await runCommand(["sh", "-ec", script]);
  return { meshId, a, b };
}

/** A TCP server inside the namespace (closed at teardown). */
export async function serveIn(
  t: Test,
  netnsPath: string,
  port: number,
  onConnection: (s: net.Socket) => void,
  host = "0.0.0.0",
): Promise<net.Server> {
  const fd = listenInNetns(netnsPath, { host, port });
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return server;
}

/** A server that answers every connection with `<name> <peer address>` and closes. */
export function nameServer(t: Test, netnsPath: string, port: number, name: string): Promise<net.Server> {
  return serveIn(t, netnsPath, port, (s) => s.end(`${name} ${s.remoteAddress}`));
}

/** Everything the socket sends until it closes. */
export function readAll(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      data += d;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(data));
  });
}

/** Resolves once the file's text satisfies `pred`, woken by file change events (no polling). */
export async function waitForFile(file: string, pred: (text: string) => boolean): Promise<void> {
  const watcher = fs.watch(file);
  try {
    while (!pred(fs.readFileSync(file, "utf8"))) await once(watcher, "change");
  } finally {
    watcher.close();
  }
}

/** Writes `msg` on a connection to an echo server ("echo:<msg>" back) and resolves once the echo is complete. */
export function echoRoundTrip(s: net.Socket, msg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = "";
    const want = `echo:${msg}`;
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length < want.length) return;
      done();
      if (got === want) resolve();
      else reject(new Error(`got ${JSON.stringify(got)}`));
    };
    const onEnd = (err?: Error | boolean) => {
      done();
      const why = err instanceof Error ? `: ${err.message}` : "";
      reject(new Error(`closed before the echo (${JSON.stringify(got)})${why}`));
    };
    const done = () => {
      s.off("data", onData);
      s.off("close", onEnd);
      s.off("error", onEnd);
    };
    s.on("data", onData);
    s.once("close", onEnd);
    s.once("error", onEnd);
    s.write(msg);
  });
}

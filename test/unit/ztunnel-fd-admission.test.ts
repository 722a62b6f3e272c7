// Admission at the fd limit: with this process's RLIMIT_NOFILE lowered
// (prlimit on itself), a listener wrapped by admitWithinFdLimit admits
// connections until the reserve is reached, then resets new ones with a
// counter, while the admitted ones keep working.
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import t from "tap";
import { registry } from "../../core/telemetry/metrics.js";
import { admitWithinFdLimit, fdReserve, readNofileLimit } from "../../ztunnel/node-agent/accept-errors.js";

t.test("parses the soft limit; the reserve is 2% with a floor of 16", async (t) => {
  const text =
    "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
  t.equal(readNofileLimit(text), 1024);
  t.equal(readNofileLimit(text.replace("1024 ", "unlimited ")), undefined);
  t.equal(fdReserve(100), 16);
  t.equal(fdReserve(100_000), 2000);
});

const hasPrlimit = (() => {
  try {
    execFileSync("prlimit", ["--version"]);
    return true;
  } catch {
    return false;
  }
})();

t.test(
  "near the limit new connections are reset and counted; admitted ones keep working",
  { skip: !hasPrlimit && "no prlimit" },
  async (t) => {
    const limits = fs.readFileSync("/proc/self/limits", "utf8");
    const line = limits.split("\n").find((l) => l.startsWith("Max open files"))!;
    const [soft, hard] = line.split(/\s+/).slice(3, 5) as [string, string];
    const server = net.createServer(
      admitWithinFdLimit("test", (s) => {
        s.on("error", () => {});
        s.on("data", (d) => s.write(d));
      }),
    );
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    t.teardown(() => server.close());
    const { port } = server.address() as net.AddressInfo;
    const inUse = fs.readdirSync("/proc/self/fd").length;
    // Room for 10 admitted connections (each costs 2 fds here: the client end and the accepted end).
    const limit = inUse + fdReserve(inUse + 40) + 20;
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${limit}:${hard}`]);
    t.teardown(() => execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${soft}:${hard}`]));

    const metric = async () =>
      ((await registry.getSingleMetric("ambit_ztunnel_refused_connections_total")?.get())?.values ?? [])
        .filter((v) => v.labels.listener === "test" && v.labels.reason === "fd_limit")
        .reduce((a, v) => a + v.value, 0);
    const before = await metric();
    const clients: net.Socket[] = [];
    t.teardown(() => {
      for (const c of clients) c.destroy();
    });
    const outcome = async (): Promise<"echo" | "reset"> => {
      const c = net.connect({ host: "127.0.0.1", port });
      clients.push(c);
      return new Promise((resolve) => {
        c.on("connect", () => c.write("x"));
        c.on("data", () => resolve("echo"));
        c.on("error", () => resolve("reset"));
        c.on("close", () => resolve("reset"));
      });
    };
    const results: string[] = [];
    for (let i = 0; i < 20; i++) results.push(await outcome());
    const admitted = results.filter((r) => r === "echo").length;
    t.ok(admitted >= 5 && admitted < 20, `some admitted (${admitted}), the rest refused`);
    t.same(
      results.slice(0, admitted),
      Array(admitted).fill("echo"),
      "admitted first, refused once near the limit",
    );
    t.equal((await metric()) - before, 20 - admitted, "every refusal counted (reason fd_limit)");
    // The admitted connections still echo.
    const live = clients.filter((c) => !c.destroyed);
    t.equal(live.length, admitted);
    for (const c of live) {
      c.write("y");
      await once(c, "data");
    }
    t.pass("admitted connections keep working");
  },
);

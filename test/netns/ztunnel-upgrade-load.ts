// The short-connection load of the upgrade tests, as a separate process
// inside the client pod's namespace: connect, send one message, wait for its
// echo, close; started at a constant rate (what is due since the start, so a
// stall catches up) with at most `maxInflight` at once, so an overloaded
// machine lowers the rate instead of piling up requests until they time out
// (a request without an answer for `hangMs` counts as failed: a hang).
// Running it apart from the test process keeps its CPU off the event loop
// of the ztunnels under test.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

export interface LoadOptions {
  host: string;
  port: number;
  rps: number;
  maxInflight?: number;
  hangMs?: number;
}

export interface LoadStats {
  sent: number;
  ok: number;
  inflight: number;
  /** Requests due while `maxInflight` were in flight, not started. */
  skipped: number;
  failures: string[];
  /** Seconds since the load started. */
  seconds: number;
}

const SCRIPT = `
const net = require("net");
const [host, port, rps, maxInflight, hangMs] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
let sent = 0, ok = 0, inflight = 0, scheduled = 0, skipped = 0, stopping = false;
const start = Date.now();
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const one = (n) => {
  inflight++;
  const startedAt = new Date().toISOString();
  const s = net.connect({ host, port });
  const msg = "short " + n;
  let got = "", done = false;
  const finish = (err) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    inflight--;
    s.destroy();
    if (err) out({ t: "fail", msg: msg + " (port " + s.localPort + ", started " + startedAt + ", failed " + new Date().toISOString() + "): " + err });
    else ok++;
  };
  const timer = setTimeout(() => finish("no answer in " + hangMs + " ms"), hangMs);
  s.on("connect", () => s.write(msg));
  s.on("data", (d) => { got += d; if (got.length >= msg.length + 5) finish(got === "echo:" + msg ? undefined : "got " + JSON.stringify(got)); });
  s.on("error", (e) => finish(e.code || e.message));
  s.on("close", () => finish("closed before the echo (" + JSON.stringify(got) + ")"));
};
const tick = setInterval(() => {
  if (stopping) return;
  const due = Math.floor(((Date.now() - start) * rps) / 1000);
  // At the cap, what is due is skipped (and counted): the rate reached is reported.
  for (; scheduled < due; scheduled++) {
    if (inflight < maxInflight) one(sent++);
    else skipped++;
  }
}, 5);
const stat = setInterval(() => out({ t: "stat", sent, ok, inflight, skipped, seconds: (Date.now() - start) / 1000 }), 200);
process.stdin.on("data", () => {
  stopping = true;
  clearInterval(tick);
  const seconds = (Date.now() - start) / 1000;
  const wait = setInterval(() => {
    if (inflight > 0) return;
    clearInterval(wait);
    clearInterval(stat);
    out({ t: "done", sent, ok, inflight: 0, skipped, seconds });
    process.exit(0);
  }, 20);
});
`;

export class ShortConnectionLoad {
  private readonly child: ChildProcess;
  private last: LoadStats = { sent: 0, ok: 0, inflight: 0, skipped: 0, failures: [], seconds: 0 };
  private readonly done: Promise<LoadStats>;

  constructor(netnsPath: string, opts: LoadOptions) {
    const args = [opts.host, opts.port, opts.rps, opts.maxInflight ?? 200, opts.hangMs ?? 20_000].map(String);
    this.child = spawn("nsenter", [`--net=${netnsPath}`, "--", process.execPath, "-e", SCRIPT, ...args], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    const failures = this.last.failures;
    this.done = new Promise((resolve, reject) => {
      const lines = createInterface({ input: this.child.stdout! });
      lines.on("line", (line) => {
        const m = JSON.parse(line) as { t: string; msg?: string } & Partial<LoadStats>;
        if (m.t === "fail") failures.push(m.msg ?? "");
        else {
          this.last = {
            sent: m.sent ?? 0,
            ok: m.ok ?? 0,
            inflight: m.inflight ?? 0,
            skipped: m.skipped ?? 0,
            seconds: m.seconds ?? 0,
            failures,
          };
          if (m.t === "done") resolve(this.last);
        }
      });
      this.child.once("exit", (code) =>
        reject(new Error(`load generator exited (${code}) before it was stopped`)),
      );
    });
    this.done.catch(() => undefined);
  }

  /** The latest figures (every 200 ms). */
  get stats(): LoadStats {
    return this.last;
  }

  /** Stops starting requests, waits for those in flight, resolves with the totals. */
  stop(): Promise<LoadStats> {
    this.child.stdin?.write("stop\n");
    return this.done;
  }

  /** For teardown: ends the generator whatever its state. */
  kill(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

// The fault tests' traffic: a generator run inside a pod (long-lived
// connections pinged at a fixed interval plus new connections at a constant
// rate, echo or HTTP/1.1, one JSON line per event) and the test side that
// keeps every event and answers questions over time windows.
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";

const cliMain = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

// ---- traffic --------------------------------------------------------------

/**
 * Runs inside a pod. Long-lived connections send `P<9 digits>` every pingMs
 * and count the echoes; new connections are opened at `rate` per second,
 * each sending `S<n>` and waiting for its echo. One JSON line per event;
 * ends (and says "done") when stdin closes.
 */
export const GENERATOR = `
const net = require("net");
const cfg = JSON.parse(process.argv[1]);
const out = (o) => process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + "\\n");
let stopping = false;
const longs = [];
function openLong(i) {
  const c = { i, s: net.connect({ host: cfg.host, port: cfg.port }), sent: 0, echoed: 0, buf: "", lastEcho: 0, open: false };
  c.s.setNoDelay(true);
  c.s.on("connect", () => { c.open = true; c.lastEcho = Date.now(); out({ ev: "long-open", i }); });
  c.s.on("data", (d) => {
    c.buf += d;
    let m, end = 0;
    if (cfg.http) {
      // One answer per request on a keep-alive connection; only 200s count as echoes.
      const re = /HTTP\\/1\\.1 (\\d{3})/g;
      while ((m = re.exec(c.buf))) { if (m[1] === "200") c.echoed++; end = re.lastIndex; }
      if (end) { c.buf = c.buf.slice(end); c.lastEcho = Date.now(); }
      return;
    }
    const re = /P(\\d{9})/g;
    while ((m = re.exec(c.buf))) { c.echoed = Math.max(c.echoed, Number(m[1])); end = re.lastIndex; }
    if (end) { c.buf = c.buf.slice(end); c.lastEcho = Date.now(); }
  });
  const closed = (error) => {
    if (!c.open && !error) return;
    const was = c.open; c.open = false;
    if (!stopping && !c.reported) { c.reported = true; out({ ev: "long-drop", i, error: error || "closed", sent: c.sent, echoed: c.echoed, wasOpen: was }); }
  };
  c.s.on("error", (e) => closed(e.code || e.message));
  c.s.on("close", () => closed());
  longs.push(c);
}
for (let i = 0; i < cfg.long; i++) openLong(i);
const ping = setInterval(() => {
  for (const c of longs) if (c.open) {
    c.sent++;
    c.s.write(cfg.http ? "GET /long HTTP/1.1\\r\\nHost: " + cfg.hostHeader + "\\r\\n\\r\\n" : "P" + String(c.sent).padStart(9, "0"));
  }
}, cfg.pingMs);
let n = 0, inflight = 0;
const short = cfg.rate > 0 && setInterval(() => {
  const id = ++n, t0 = Date.now();
  inflight++;
  const s = net.connect({ host: cfg.host, port: cfg.port });
  let got = "", done = false;
  const end = (ok, error) => {
    if (done) return; done = true; inflight--;
    clearTimeout(timer); s.destroy();
    out({ ev: "short", n: id, ok, ...(error ? { error } : {}), ms: Date.now() - t0 });
  };
  const timer = setTimeout(() => end(false, "timeout"), cfg.timeoutMs);
  if (cfg.http) {
    s.on("connect", () => s.write("GET /short/" + id + " HTTP/1.1\\r\\nHost: " + cfg.hostHeader + "\\r\\nConnection: close\\r\\n\\r\\n"));
    s.on("data", (d) => {
      got += d;
      const m = /^HTTP\\/1\\.1 (\\d{3})/.exec(got);
      if (m) end(m[1] === "200", m[1] === "200" ? undefined : "http " + m[1]);
    });
    s.on("error", (e) => end(false, e.code || e.message));
    s.on("close", () => end(false, got ? "closed-early" : "closed"));
    return;
  }
  s.on("connect", () => s.write("S" + id + ";"));
  s.on("data", (d) => { got += d; if (got.includes("echo:S" + id + ";")) end(true); });
  s.on("error", (e) => end(false, e.code || e.message));
  s.on("close", () => end(false, got ? "closed-early" : "closed"));
}, 1000 / cfg.rate);
const tick = setInterval(() => {
  const now = Date.now();
  let stall = 0;
  for (const c of longs) if (c.open && c.sent > c.echoed) stall = Math.max(stall, now - c.lastEcho);
  out({ ev: "tick", open: longs.filter((c) => c.open).length, stallMs: stall });
}, 500);
process.stdin.resume();
process.stdin.on("end", () => {
  stopping = true;
  // No new ping or connection; the report waits (up to 5 s) for the answers to
  // those already sent, so that a ping in flight at the stop is not counted
  // as lost.
  if (short) clearInterval(short); clearInterval(tick); clearInterval(ping);
  const stopAt = Date.now();
  const wait = setInterval(() => {
    const pending = inflight > 0 || longs.some((c) => c.open && c.echoed < c.sent);
    if (pending && Date.now() - stopAt < 5000) return;
    clearInterval(wait);
    out({ ev: "done", longs: longs.map((c) => ({ i: c.i, open: c.open, sent: c.sent, echoed: c.echoed })) });
    for (const c of longs) c.s.destroy();
    process.exit(0);
  }, 20);
});
`;

export interface TrafficOptions {
  host: string;
  port: number;
  /** Long-lived connections (default 10). */
  long?: number;
  /** Ping interval of each long-lived connection (default 200 ms). */
  pingMs?: number;
  /** New connections per second (default 10). */
  rate?: number;
  /** A new connection that has not echoed within this fails (default 3000 ms). */
  timeoutMs?: number;
  /** HTTP/1.1 instead of echo: long-lived connections send keep-alive GETs, new ones one GET each; 200 is success. */
  http?: boolean;
  /** Host header in HTTP mode (default: host). */
  hostHeader?: string;
}

export interface TrafficEvent {
  t: number;
  ev: "long-open" | "long-drop" | "short" | "tick" | "done";
  i?: number;
  n?: number;
  ok?: boolean;
  error?: string;
  ms?: number;
  open?: number;
  stallMs?: number;
  longs?: { i: number; open: boolean; sent: number; echoed: number }[];
}

export interface ShortSummary {
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

/** The test side of one generator: every event kept, with queries over time windows. */
export class Traffic extends EventEmitter {
  readonly events: TrafficEvent[] = [];
  private exited: Promise<unknown>;

  private constructor(
    private readonly proc: ChildProcess,
    readonly opts: Required<TrafficOptions>,
  ) {
    super();
    this.exited = once(proc, "exit");
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      let e: TrafficEvent;
      try {
        e = JSON.parse(line) as TrafficEvent;
      } catch {
        return;
      }
      this.events.push(e);
      this.emit("event", e);
    });
  }

  static async start(
    t: Test,
    runDir: string,
    meshId: string,
    from: string,
    o: TrafficOptions,
  ): Promise<Traffic> {
    const opts = { long: 10, pingMs: 200, rate: 10, timeoutMs: 3000, http: false, hostHeader: o.host, ...o };
    const proc = spawn(
      process.execPath,
      [cliMain, "exec", "--mesh-id", meshId, from, "--", "node", "-e", GENERATOR, JSON.stringify(opts)],
      {
        env: { ...process.env, AMBIT_RUN_DIR: runDir, NODE_OPTIONS: "" },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const tr = new Traffic(proc, opts);
    t.teardown(() => tr.stop().catch(() => undefined));
    // Ready: every long-lived connection open and a few new connections through.
    await tr.until(
      () => {
        const s = tr.shortsSince(0);
        // Every long-lived connection opened or refused (under a fault some never open).
        const settled = new Set(
          tr.events.filter((e) => e.ev === "long-open" || e.ev === "long-drop").map((e) => e.i),
        );
        const longsOpen = settled.size >= opts.long;
        return longsOpen && (opts.rate === 0 || s.ok + s.failed >= 3);
      },
      30_000,
      `traffic from ${from} to start`,
    );
    return tr;
  }

  /** Resolves when pred() holds (checked on every event), rejects after timeoutMs. */
  until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const on = () => {
        if (!pred()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(this.shortsSince(0))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.off("event", on);
      };
      this.on("event", on);
    });
  }

  /** Results of new connections that ended in [from, to). */
  shortsSince(from: number, to = Number.POSITIVE_INFINITY): ShortSummary {
    const s: ShortSummary = { ok: 0, failed: 0, errors: {} };
    for (const e of this.events) {
      if (e.ev !== "short" || e.t < from || e.t >= to) continue;
      if (e.ok) s.ok++;
      else {
        s.failed++;
        s.errors[e.error ?? "?"] = (s.errors[e.error ?? "?"] ?? 0) + 1;
      }
    }
    return s;
  }

  /** The last `k` new connections all ended with ok === want. */
  lastShorts(k: number, want: boolean): boolean {
    const shorts = this.events.filter((e) => e.ev === "short");
    return shorts.length >= k && shorts.slice(-k).every((e) => e.ok === want);
  }

  drops(): TrafficEvent[] {
    return this.events.filter((e) => e.ev === "long-drop");
  }

  /** Longest time a long-lived connection waited for an echo in [from, to). */
  maxStallMs(from: number, to = Number.POSITIVE_INFINITY): number {
    let m = 0;
    for (const e of this.events)
      if (e.ev === "tick" && e.t >= from && e.t < to) m = Math.max(m, e.stallMs ?? 0);
    return m;
  }

  private stopped: Promise<TrafficEvent | undefined> | undefined;

  /** Ends the generator; resolves with its final report (every long-lived connection's counts). */
  stop(): Promise<TrafficEvent | undefined> {
    this.stopped ??= (async () => {
      this.proc.stdin?.end();
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
      return this.events.find((e) => e.ev === "done");
    })();
    return this.stopped;
  }
}

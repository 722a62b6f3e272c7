// Run inside the client pod: a fixed rate of request/echo exchanges (64 bytes
// each way) to a TCP echo server over CONNECTIONS connections, each of which
// is closed and replaced after PER_CONNECTION exchanges (connection churn:
// RATE / PER_CONNECTION new connections per second). Prints one JSON line of
// counters every REPORT_SECONDS and a final one after SECONDS, then exits.
//   node churn-load.js IP PORT RATE CONNECTIONS PER_CONNECTION SECONDS REPORT_SECONDS
import { connect, type Socket } from "node:net";

const [
  ip = "",
  portStr = "",
  rateStr = "1000",
  connStr = "16",
  perStr = "100",
  secStr = "60",
  repStr = "60",
] = process.argv.slice(2);
const port = Number(portStr);
const rate = Number(rateStr);
const connections = Number(connStr);
const perConnection = Number(perStr);
const seconds = Number(secStr);
const reportSeconds = Number(repStr);
const PAYLOAD = Buffer.alloc(64, "a");
const TIMEOUT_MS = 10_000;

const totals = { requests: 0, errors: 0, connectionsOpened: 0, connectErrors: 0, late: 0 };
let window = { requests: 0, errors: 0, latencies: [] as number[] };

/** Tokens released by the pacer; a worker takes one per exchange. */
let tokens = 0;
const waiters: (() => void)[] = [];
function take(): Promise<void> {
  if (tokens > 0) {
    tokens--;
    return Promise.resolve();
  }
  return new Promise((r) => waiters.push(r));
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ip, port });
    s.setNoDelay(true);
    const t = setTimeout(() => s.destroy(new Error("connect timeout")), TIMEOUT_MS);
    s.once("error", (err) => {
      clearTimeout(t);
      reject(err);
    });
    s.once("connect", () => {
      clearTimeout(t);
      totals.connectionsOpened++;
      resolve(s);
    });
  });
}

function exchange(s: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const t0 = performance.now();
    const timer = setTimeout(() => {
      cleanup();
      totals.late++;
      reject(new Error("echo timeout"));
    }, TIMEOUT_MS);
    const onData = (d: Buffer) => {
      got += d.length;
      if (got < PAYLOAD.length) return;
      cleanup();
      window.latencies.push(performance.now() - t0);
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error("closed"));
    };
    const cleanup = () => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("close", onClose);
    };
    s.on("data", onData);
    s.once("close", onClose);
    s.write(PAYLOAD);
  });
}

let running = true;

async function worker(): Promise<void> {
  while (running) {
    let s: Socket;
    try {
      s = await open();
    } catch {
      totals.connectErrors++;
      window.errors++;
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    s.on("error", () => undefined);
    try {
      for (let i = 0; i < perConnection && running; i++) {
        await take();
        if (!running) break;
        await exchange(s);
        totals.requests++;
        window.requests++;
      }
    } catch {
      totals.errors++;
      window.errors++;
    }
    s.end();
    s.destroy();
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

function report(phase: string): void {
  process.stdout.write(
    `${JSON.stringify({
      phase,
      ...totals,
      window: {
        requests: window.requests,
        errors: window.errors,
        p50Ms: pct(window.latencies, 50),
        p99Ms: pct(window.latencies, 99),
      },
    })}\n`,
  );
  window = { requests: 0, errors: 0, latencies: [] };
}

const TICK_MS = 10;
let carry = 0;
const pacer = setInterval(() => {
  carry += (rate * TICK_MS) / 1000;
  let n = Math.floor(carry);
  carry -= n;
  while (n > 0 && waiters.length > 0) {
    (waiters.shift() as () => void)();
    n--;
  }
  // Unused tokens do not accumulate beyond one tick (a fixed rate, not a burst after a stall).
  tokens = Math.min(n, Math.ceil((rate * TICK_MS) / 1000));
}, TICK_MS);

const reporter = setInterval(() => report("running"), reportSeconds * 1000);
for (let i = 0; i < connections; i++) void worker();
setTimeout(() => {
  running = false;
  clearInterval(pacer);
  clearInterval(reporter);
  for (const w of waiters.splice(0)) w();
  report("done");
  setTimeout(() => process.exit(0), 200);
}, seconds * 1000);

// Run inside the client pod: opens N TCP connections to a TCP echo server (at
// most CONCURRENCY being set up at once), proves each with a round trip, then
// holds them all for HOLD_SECONDS while every connection sends a 16-byte
// message every EVERY_SECONDS (the round robin is spread evenly over the
// period) and checks the echo. A connection that closes, errors, or whose echo
// is wrong or later than 10 s counts as dropped. Prints one JSON line of
// progress every 30 s and a final one, then exits.
//   node held-conns.js IP PORT N CONCURRENCY HOLD_SECONDS EVERY_SECONDS
import { connect, type Socket } from "node:net";

const [ip = "", portStr = "", nStr = "", concStr = "64", holdStr = "60", everyStr = "30"] =
  process.argv.slice(2);
const port = Number(portStr);
const total = Number(nStr);
const concurrency = Number(concStr);
const holdMs = Number(holdStr) * 1000;
const everyMs = Number(everyStr) * 1000;
const ECHO_DEADLINE_MS = 10_000;

interface Held {
  id: number;
  socket: Socket;
  /** The message awaiting its echo, and when it was sent. */
  expect?: string;
  sentAt: number;
  got: string;
  exchanges: number;
  dropped: boolean;
}

const stats = { opened: 0, setupErrors: 0, dropped: 0, exchanges: 0, wrongEcho: 0, late: 0 };
const dropReasons = new Map<string, number>();
const held: Held[] = [];
let holding = false;

function drop(h: Held, reason: string): void {
  if (h.dropped) return;
  h.dropped = true;
  stats.dropped++;
  dropReasons.set(reason, (dropReasons.get(reason) ?? 0) + 1);
  h.socket.destroy();
}

function openOne(id: number): Promise<Held> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ip, port });
    s.setNoDelay(true);
    const fail = (err: Error) => {
      s.destroy();
      reject(err);
    };
    s.once("error", fail);
    s.once("connect", () => s.write("x"));
    s.once("data", () => {
      s.off("error", fail);
      s.setTimeout(0);
      const h: Held = { id, socket: s, sentAt: 0, got: "", exchanges: 0, dropped: false };
      s.on("data", (d: Buffer) => onData(h, d));
      s.on("error", (err: Error & { code?: string }) => drop(h, err.code ?? "error"));
      s.once("close", () => {
        if (holding) drop(h, "closed");
      });
      resolve(h);
    });
    s.setTimeout(20_000, () => fail(new Error("setup timeout")));
  });
}

function onData(h: Held, d: Buffer): void {
  if (h.expect === undefined) {
    stats.wrongEcho++;
    drop(h, "unexpected bytes");
    return;
  }
  h.got += d.toString("latin1");
  if (h.got.length < h.expect.length) return;
  if (h.got !== h.expect) {
    stats.wrongEcho++;
    drop(h, "wrong echo");
    return;
  }
  h.expect = undefined;
  h.got = "";
  h.exchanges++;
  stats.exchanges++;
}

function exchange(h: Held, now: number): void {
  if (h.dropped) return;
  if (h.expect !== undefined) {
    if (now - h.sentAt > ECHO_DEADLINE_MS) {
      stats.late++;
      drop(h, "echo late");
    }
    return;
  }
  h.expect = `${String(h.id).padStart(6, "0")}:${String(h.exchanges).padStart(9, "0")}`;
  h.sentAt = now;
  h.socket.write(h.expect);
}

function report(phase: string): void {
  const minExchanges = held.reduce((m, h) => Math.min(m, h.exchanges), Number.POSITIVE_INFINITY);
  process.stdout.write(
    `${JSON.stringify({
      phase,
      ...stats,
      held: held.length - stats.dropped,
      minExchangesPerConnection: Number.isFinite(minExchanges) ? minExchanges : 0,
      dropReasons: Object.fromEntries(dropReasons),
    })}\n`,
  );
}

async function main(): Promise<void> {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < total) {
      const id = next++;
      try {
        held.push(await openOne(id));
        stats.opened++;
      } catch {
        stats.setupErrors++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const setupSeconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ phase: "opened", ...stats, setupSeconds })}\n`);
  holding = true;
  // Round robin: every TICK_MS a slice, so that each connection comes round once per period.
  const TICK_MS = 100;
  const perTick = Math.max(1, Math.ceil((held.length * TICK_MS) / everyMs));
  let cursor = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    for (let i = 0; i < perTick && held.length > 0; i++) {
      exchange(held[cursor] as Held, now);
      cursor = (cursor + 1) % held.length;
    }
  }, TICK_MS);
  const progress = setInterval(() => report("holding"), 30_000);
  await new Promise((r) => setTimeout(r, holdMs));
  clearInterval(tick);
  clearInterval(progress);
  // Let the last messages come back before judging them.
  const deadline = performance.now() + ECHO_DEADLINE_MS;
  while (held.some((h) => !h.dropped && h.expect !== undefined) && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  const now = performance.now();
  for (const h of held) if (!h.dropped && h.expect !== undefined) exchange(h, now + ECHO_DEADLINE_MS + 1);
  holding = false;
  report("done");
  for (const h of held) h.socket.destroy();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`held-conns: ${String(err)}\n`);
  process.exit(1);
});

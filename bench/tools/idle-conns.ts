// Run inside the client pod: opens N TCP connections to a TCP echo server
// (at most `concurrency` being set up at once), proves each one end to end
// with a one-byte round trip, then prints one JSON line and keeps them all
// open, idle, until its stdin closes.
//   node idle-conns.js IP PORT N CONCURRENCY
import { connect, type Socket } from "node:net";

const [ip = "", portStr = "", nStr = "", concStr = "64"] = process.argv.slice(2);
const port = Number(portStr);
const total = Number(nStr);
const concurrency = Number(concStr);

function openOne(): Promise<Socket> {
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
      s.on("error", () => undefined);
      resolve(s);
    });
    s.setTimeout(10_000, () => fail(new Error("timeout")));
  });
}

async function main(): Promise<void> {
  const sockets: Socket[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < total) {
      next++;
      try {
        const s = await openOne();
        s.setTimeout(0);
        sockets.push(s);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${JSON.stringify({ opened: sockets.length, errors, seconds, setupRate: sockets.length / seconds })}\n`,
  );
  process.stdin.resume();
  process.stdin.once("end", () => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`idle-conns: ${String(err)}\n`);
  process.exit(1);
});

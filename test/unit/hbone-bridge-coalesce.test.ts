// The bridge's forwarder: one chunk per loop iteration (request/response
// traffic) is written at once; more chunks in the same iteration (an HTTP/2
// DATA frame arrives as one callback per TLS record, each its own tick) are
// coalesced into one writev at the end of the iteration.
import { once } from "node:events";
import net from "node:net";
import { Readable, Writable } from "node:stream";
import { setImmediate as immediate } from "node:timers/promises";
import t from "tap";
import { bridge, forward } from "../../core/hbone/bridge.js";
import { HboneClient } from "../../core/hbone/client.js";
import { HboneServer } from "../../core/hbone/server.js";
import { makePki } from "./fixtures-pki.js";
import { loopbackNet, spiffe } from "./fixtures-ztunnel.js";

/** A destination that records each write operation as the number of chunks it carried. */
function recordingSink(): { dst: Writable; ops: number[] } {
  const ops: number[] = [];
  const dst = new Writable({
    write(_chunk, _enc, cb) {
      ops.push(1);
      cb();
    },
    writev(chunks, cb) {
      ops.push(chunks.length);
      cb();
    },
  });
  return { dst, ops };
}

t.test("a lone chunk is written synchronously, not deferred", async (tt) => {
  const src = new Readable({ read() {} });
  const { dst, ops } = recordingSink();
  forward(src, dst);
  await immediate(); // the 'data' listener has put src in flowing mode
  src.push(Buffer.from("request"));
  tt.same(ops, [1], "written inside the 'data' callback");
  await immediate();
  src.push(Buffer.from("next request, a later iteration"));
  tt.same(ops, [1, 1], "the next iteration's first chunk is written at once too");
});

t.test("chunks arriving in separate ticks of one iteration leave as one writev", async (tt) => {
  const src = new Readable({ read() {} });
  const { dst, ops } = recordingSink();
  forward(src, dst);
  await immediate();
  // As an HTTP/2 session delivers one TLS read: each record in its own
  // callback, the tick queue drained between them.
  await new Promise<void>((resolve) => {
    setTimeout(() => {
      src.push(Buffer.alloc(1000));
      process.nextTick(() => {
        src.push(Buffer.alloc(9));
        process.nextTick(() => {
          src.push(Buffer.alloc(16384));
          resolve();
        });
      });
    }, 1);
  });
  tt.same(ops, [1], "only the first chunk went out during the iteration");
  await immediate();
  tt.same(ops, [1, 2], "the other two leave together at the end of the iteration");
});

t.test("a bulk-sized first chunk waits for the rest of its iteration", async (tt) => {
  const src = new Readable({ read() {} });
  const { dst, ops } = recordingSink();
  forward(src, dst);
  await immediate();
  await new Promise<void>((resolve) => {
    setTimeout(() => {
      src.push(Buffer.alloc(16375)); // a TLS record's share of a DATA frame
      process.nextTick(() => {
        src.push(Buffer.alloc(16384));
        process.nextTick(() => {
          src.push(Buffer.alloc(9));
          resolve();
        });
      });
    }, 1);
  });
  tt.same(ops, [], "nothing written during the iteration");
  await immediate();
  tt.same(ops, [3], "one writev of all three at its end");
  src.push(Buffer.alloc(100));
  tt.same(ops, [3, 1], "a small chunk of the next iteration goes at once");
});

t.test("a destination still backed up when an iteration begins pauses the source", async (tt) => {
  const src = new Readable({ read() {} });
  // A destination whose writes never complete (a peer that stopped reading).
  const dst = new Writable({ highWaterMark: 1024, write() {}, writev() {} });
  forward(src, dst);
  await immediate();
  src.push(Buffer.alloc(16384));
  src.push(Buffer.alloc(16384));
  tt.notOk(src.isPaused(), "an iteration's chunks gather past the high-water mark");
  await immediate();
  src.push(Buffer.alloc(100));
  tt.ok(src.isPaused(), "the next iteration finds it full: backpressure");
});

t.test("pauseAtBytes: the source keeps flowing past dst's high-water mark up to that many bytes", async (tt) => {
  const src = new Readable({ read() {} });
  // Writes that never complete: everything stays in dst's buffer.
  const dst = new Writable({ highWaterMark: 1024, write() {}, writev() {} });
  forward(src, dst, false, 64 * 1024);
  await immediate();
  src.push(Buffer.alloc(16384));
  tt.notOk(src.isPaused(), "16 KiB buffered: over the high-water mark, still flowing");
  src.push(Buffer.alloc(16384));
  src.push(Buffer.alloc(16384));
  tt.notOk(src.isPaused(), "48 KiB buffered: still flowing");
  src.push(Buffer.alloc(16384));
  tt.ok(src.isPaused(), "64 KiB buffered: paused");
});

t.test("pauseAtBytes: a paused source resumes on dst's drain", async (tt) => {
  const src = new Readable({ read() {} });
  const pending: (() => void)[] = [];
  const dst = new Writable({
    highWaterMark: 1024,
    write(_c, _e, cb) {
      pending.push(cb);
    },
  });
  forward(src, dst, false, 32 * 1024);
  await immediate();
  src.push(Buffer.alloc(16384));
  src.push(Buffer.alloc(16384));
  tt.ok(src.isPaused(), "paused at 32 KiB");
  while (pending.length) (pending.shift() as () => void)();
  await immediate();
  tt.notOk(src.isPaused(), "resumed once dst drained");
});

t.test("coalesce false: every chunk is written at once", async (tt) => {
  const src = new Readable({ read() {} });
  const { dst, ops } = recordingSink();
  forward(src, dst, false);
  await immediate();
  src.push(Buffer.alloc(16384));
  src.push(Buffer.alloc(16384));
  tt.same(ops, [1, 1]);
});

t.test("a bulk transfer through HBONE arrives intact in fewer writes than chunks", async (tt) => {
  const ip = loopbackNet();
  const SERVER_IP = ip(4);
  const certs = (await makePki()).source();
  const CLIENT = spiffe("a", "client");
  const SERVER = spiffe("b", "server");
  // The application: counts bytes and a checksum of what it received.
  let received = 0;
  let sum = 0;
  const app = net.createServer((s) => {
    s.on("data", (d: Buffer) => {
      // Every 4096th byte of the stream, wherever the chunks were cut.
      for (let i = (4096 - (received % 4096)) % 4096; i < d.length; i += 4096)
        sum = (sum * 31 + (d[i] as number)) % 1_000_003;
      received += d.length;
    });
    s.on("end", () => s.end());
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  tt.teardown(() => app.close());
  let chunks = 0;
  let writeOps = 0;
  const server = new HboneServer({
    handler: (stream) => {
      const sock = net.connect((app.address() as net.AddressInfo).port, "127.0.0.1");
      sock.once("connect", () => {
        stream.respond({ ":status": 200 });
        stream.on("data", () => chunks++);
        const w = sock._write.bind(sock);
        const wv = sock._writev?.bind(sock);
        sock._write = (c, e, cb) => {
          writeOps++;
          w(c, e, cb);
        };
        if (wv)
          sock._writev = (cs, cb) => {
            writeOps++;
            wv(cs, cb);
          };
        bridge(sock, stream, () => {});
      });
    },
  });
  const listener = await server.listen({ host: SERVER_IP, port: 0 }, { cert: () => certs.get(SERVER) });
  tt.teardown(() => server.close());
  const client = new HboneClient({ certs, connectTimeoutMs: 5000 });
  tt.teardown(() => client.destroy());
  const s = await client.connect({
    srcIdentity: CLIENT,
    srcIp: "",
    dstIdentity: SERVER,
    dstIp: SERVER_IP,
    dstPort: listener.address().port,
    authority: "127.0.0.1:1",
  });
  const block = Buffer.alloc(64 * 1024);
  let expectSum = 0;
  const total = 64;
  for (let n = 0; n < total; n++) {
    block.fill(n);
    for (let i = 0; i < block.length; i += 4096) expectSum = (expectSum * 31 + n) % 1_000_003;
    if (!s.write(Buffer.from(block))) await once(s, "drain");
  }
  s.end();
  s.resume();
  await once(s, "end");
  tt.equal(received, total * block.length, "every byte arrived");
  tt.equal(sum, expectSum, "in order");
  tt.ok(writeOps < chunks, `${writeOps} socket writes for ${chunks} HTTP/2 data chunks`);
});

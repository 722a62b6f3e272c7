// ConnectionDrain: what an upgrading ztunnel waits for before it exits.
import t from "tap";
import type { Bridge } from "../../core/hbone/bridge.js";
import { ConnectionDrain } from "../../ztunnel/proxy/drain.js";

function fakeBridge(): Bridge & { aborted: boolean } {
  const b = {
    aborted: false,
    abort() {
      b.aborted = true;
    },
  };
  return b;
}

t.test("idle at once when nothing is open", async (t) => {
  const d = new ConnectionDrain();
  t.equal(d.count, 0);
  await d.whenIdle();
});

t.test("a connection being set up holds the drain until it settles", async (t) => {
  const d = new ConnectionDrain();
  const slot = d.begin();
  let idle = false;
  const p = d.whenIdle().then(() => {
    idle = true;
  });
  await new Promise((r) => setImmediate(r));
  t.notOk(idle, "still dialling: not idle");
  const b = fakeBridge();
  slot.opened(b);
  t.equal(d.count, 1, "spliced: still counted once");
  await new Promise((r) => setImmediate(r));
  t.notOk(idle);
  slot.done();
  slot.done();
  await p;
  t.equal(d.count, 0, "done is idempotent");
});

t.test("a failed setup releases its slot", async (t) => {
  const d = new ConnectionDrain();
  d.begin().done();
  t.equal(d.count, 0);
  await d.whenIdle();
});

t.test("done before opened (a synchronous failure): opened is ignored", async (t) => {
  const d = new ConnectionDrain();
  const slot = d.begin();
  slot.done();
  slot.opened(fakeBridge());
  t.equal(d.count, 0);
});

t.test("abortAll resets spliced connections only", async (t) => {
  const d = new ConnectionDrain();
  const a = fakeBridge();
  const s1 = d.begin();
  s1.opened(a);
  d.begin();
  d.abortAll();
  t.ok(a.aborted);
  t.equal(d.count, 2, "aborting does not settle: the bridges' end callbacks do");
});

// The xDS client's reconnect schedule when the controller is away: capped
// exponential backoff with full jitter (pure schedule, then the schedule the
// client really follows against a killed loopback server), the attempt count
// reset by a response, and a NACK storm on one type that does not stop the
// other types from flowing or the stream from staying up.
import t from "tap";
import {
  DeltaAdsClient,
  reconnectCapMs,
  reconnectDelayMs,
  type XdsTypeHandler,
  type XdsUpdate,
} from "../../core/xds/client.js";
import { ADDRESS_TYPE, AUTHORIZATION_TYPE } from "../../core/xds/type-urls.js";
import { addressSet, nextEvent, pod, policy, policySet, startAds } from "./xds-harness.js";

t.test("the schedule: caps double from initialMs to maxMs; delays are uniform below the cap", async (t) => {
  const policy = { initialMs: 500, maxMs: 30_000 };
  t.same(
    Array.from({ length: 10 }, (_, i) => reconnectCapMs(i, policy)),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000],
  );
  t.equal(reconnectCapMs(10_000, policy), 30_000, "huge attempt numbers do not overflow");
  t.equal(
    reconnectDelayMs(3, policy, () => 0),
    0,
    "full jitter: may retry at once",
  );
  t.equal(
    reconnectDelayMs(3, policy, () => 0.5),
    2000,
  );
  t.ok(reconnectDelayMs(3, policy, () => 0.999999) < 4000, "always below the cap");

  // With the real random source: spread over the whole interval (what spreads a fleet's reconnects).
  const samples = Array.from({ length: 2000 }, () => reconnectDelayMs(4, policy));
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  t.ok(Math.abs(mean - 4000) < 400, `mean ${Math.round(mean)} ms is about half the cap (8000)`);
  t.ok(Math.min(...samples) < 800 && Math.max(...samples) > 7200, "samples cover [0, cap)");
  t.ok(
    samples.every((d) => d >= 0 && d < 8000),
    "every sample in [0, cap)",
  );
});

class Names implements XdsTypeHandler {
  items = new Set<string>();
  applied = 0;
  reject = false;
  constructor(readonly typeUrl: string) {}
  apply(u: XdsUpdate): void {
    if (this.reject) throw new Error(`${u.added.map((a) => a.name).join(",")}: rejected by test`);
    for (const a of u.added) this.items.add(a.name);
    for (const r of u.removed) this.items.delete(r);
    this.applied++;
  }
}

t.test("against a killed controller the client follows the schedule, and a response resets it", async (t) => {
  let srv = await startAds();
  const port = srv.port;
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.1")]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  const backoff = { initialMs: 20, maxMs: 160 };
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~backoff" },
    handlers: [new Names(ADDRESS_TYPE), new Names(AUTHORIZATION_TYPE)],
    backoff,
  });
  t.teardown(() => client.close());
  const attempts: { attempt: number; delayMs: number; at: number }[] = [];
  client.on("reconnecting", (e: { attempt: number; delayMs: number }) =>
    attempts.push({ ...e, at: Date.now() }),
  );
  client.start();
  await client.ready();

  srv.kill();
  const eight = nextEvent<{ attempt: number }>(client, "reconnecting", (e) => e.attempt === 8);
  await eight;
  t.same(
    attempts.map((a) => a.attempt),
    [1, 2, 3, 4, 5, 6, 7, 8],
    "one attempt after another, counted",
  );
  for (const [i, a] of attempts.entries()) {
    const cap = reconnectCapMs(i, backoff);
    t.ok(
      a.delayMs >= 0 && a.delayMs < cap,
      `attempt ${a.attempt}: waits ${Math.round(a.delayMs)} ms < ${cap}`,
    );
  }
  // The waits really happen: attempt n+1 comes no sooner than attempt n's delay.
  for (let i = 1; i < attempts.length; i++) {
    const gap = attempts[i]!.at - attempts[i - 1]!.at;
    t.ok(
      gap >= Math.floor(attempts[i - 1]!.delayMs) - 2,
      `gap ${gap} ms ≥ the planned ${Math.round(attempts[i - 1]!.delayMs)} ms`,
    );
  }
  t.ok(new Set(attempts.map((a) => Math.round(a.delayMs))).size > 4, "the delays are jittered, not fixed");
  t.equal(client.state().connected, false);

  // The controller returns: the client connects on its own, and a response resets the count.
  srv = await startAds(port);
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.1")]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  await nextEvent(client, "ack");
  t.equal(client.state().connected, true, "reconnected");
  attempts.length = 0;
  srv.kill();
  const first = await nextEvent<{ attempt: number; delayMs: number }>(client, "reconnecting");
  t.equal(first.attempt, 1, "after a healthy stream the backoff starts over");
  t.ok(first.delayMs < backoff.initialMs, "... at the initial cap");
});

t.test("a NACK storm on one type: the other type keeps flowing, the stream stays up", async (t) => {
  const srv = await startAds();
  t.teardown(() => srv.close());
  srv.ads.publish(ADDRESS_TYPE, addressSet([pod("a", "10.244.1.1")]).resources);
  srv.ads.publish(AUTHORIZATION_TYPE, policySet([]));
  const addresses = new Names(ADDRESS_TYPE);
  const policies = new Names(AUTHORIZATION_TYPE);
  const client = new DeltaAdsClient({
    address: srv.address,
    node: { id: "ztunnel~storm" },
    handlers: [addresses, policies],
    backoff: { initialMs: 20, maxMs: 200 },
  });
  t.teardown(() => client.close());
  client.start();
  await client.ready();
  let reconnects = 0;
  client.on("reconnecting", () => reconnects++);
  let nacks = 0;
  client.on("nack", () => nacks++);

  addresses.reject = true; // every Address response from now on is NACKed
  const rounds = 40;
  for (let i = 1; i <= rounds; i++) {
    const nack = nextEvent(client, "nack");
    srv.ads.publish(
      ADDRESS_TYPE,
      addressSet([pod("a", "10.244.1.1"), pod(`bad-${i}`, `10.244.2.${i}`)]).resources,
    );
    const ack = nextEvent<{ typeUrl: string }>(client, "ack", (e) => e.typeUrl === AUTHORIZATION_TYPE);
    srv.ads.publish(AUTHORIZATION_TYPE, policySet([policy(`p${i}`, 1000 + i)]));
    await Promise.all([nack, ack]);
  }
  t.equal(nacks, rounds, `${rounds} Address responses NACKed`);
  t.same(
    [...policies.items],
    [`demo/p${rounds}`],
    "every Authorization change arrived, the last one in force",
  );
  t.equal(policies.applied, rounds + 1, "each Authorization change applied once");
  t.equal(addresses.items.size, 1, "the Address type keeps its last good state");
  t.equal(reconnects, 0, "the stream was never restarted");
  t.equal(client.state().connected, true);
  t.equal(client.state().perType[ADDRESS_TYPE]?.nacked, rounds);
});

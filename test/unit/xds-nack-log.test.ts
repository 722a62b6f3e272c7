// NACK accounting of the delta ADS server: reason labels stay bounded however
// many distinct error texts proxies send, and a storm of the same NACK warns
// once per interval.
import t from "tap";
import { NackLog } from "../../controller/push/nack-log.js";

t.test("reason labels: the message, folded and cut, then 'other' past 50 per type", async (t) => {
  const log = new NackLog();
  t.equal(log.reason("Address", "bad\n  field   x"), "bad field x");
  t.equal(log.reason("Address", "x".repeat(500)).length, 120);
  for (let i = 0; i < 60; i++) log.reason("Address", `error ${i}`);
  t.equal(log.reason("Address", "a new one"), "other", "past the bound");
  t.equal(log.reason("Address", "error 3"), "error 3", "a known reason keeps its label");
  t.equal(log.reason("Authorization", "a new one"), "a new one", "bounded per type");
});

t.test("a storm of one NACK warns once per 10 s per type and reason", async (t) => {
  const log = new NackLog();
  t.equal(log.level("Address", "r", 1_000), "warn");
  t.equal(log.level("Address", "r", 2_000), "debug");
  t.equal(log.level("Address", "other reason", 2_000), "warn");
  t.equal(log.level("Authorization", "r", 2_000), "warn");
  t.equal(log.level("Address", "r", 11_000), "warn", "after the interval");
});

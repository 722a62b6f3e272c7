// pollFile: the files the local runner hands to components (pods, facts) are
// replaced by atomic rename. A change must be seen from the directory watch
// at once, without waiting for the (slow) backup poll; the poll still finds
// a file whose directory appears later.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { pollFile } from "../../core/files/poll-file.js";

const HOUR = 3_600_000;

/** Resolves on the next onChange call (rejects after 5 s: the poll alone would take an hour). */
function changes() {
  let waiting: ((v: void) => void) | undefined;
  let count = 0;
  return {
    onChange: () => {
      count++;
      waiting?.();
      waiting = undefined;
    },
    count: () => count,
    next: () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no change seen in 5 s")), 5000);
        waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

t.test("rename onto the name, rewrite and removal are seen from the directory watch", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "ambit-t-pollfile-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "pods.json");
  writeFileSync(file, "[]");
  const c = changes();
  const first = c.next();
  const p = pollFile(file, HOUR, c.onChange);
  t.teardown(() => p.close());
  await first;
  t.equal(c.count(), 1, "the first check reports");

  let next = c.next();
  writeFileSync(join(dir, "pods.json.tmp"), '[{"key":"a"}]');
  renameSync(join(dir, "pods.json.tmp"), file);
  await next;
  t.pass("an atomic replace is seen");

  next = c.next();
  writeFileSync(file, '[{"key":"a"},{"key":"b"}]');
  await next;
  t.pass("a rewrite in place is seen");

  next = c.next();
  rmSync(file);
  await next;
  t.pass("a removal is seen");

  const before = c.count();
  writeFileSync(join(dir, "other.json"), "{}");
  writeFileSync(join(dir, "other.json"), "{}{}");
  // Another file's events must not call onChange: give them time to arrive.
  await new Promise((r) => setTimeout(r, 300));
  t.equal(c.count(), before, "another file in the directory is not a change");
});

t.test("a directory that appears later is found by the backup poll", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "ambit-t-pollfile-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, "later");
  const file = join(dir, "facts.json");
  const c = changes();
  const first = c.next();
  const p = pollFile(file, 200, c.onChange);
  t.teardown(() => p.close());
  await first; // "missing" is reported once
  const next = c.next();
  mkdirSync(dir);
  writeFileSync(file, "{}");
  await next;
  t.pass("the file in the new directory is seen");
});

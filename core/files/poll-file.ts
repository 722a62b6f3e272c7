// Watches one file: calls onChange when it appears, is rewritten, replaced
// (atomic rename) or removed. A watch on the file's directory (which sees a
// rename onto the name, where a watch on the file itself loses a replaced
// file) triggers a stat at once; a slow poll of the same stat backs it up
// (a directory created later, an event dropped by the kernel, a filesystem
// without inotify). Used for the files the local runner hands to components.
// Before the directory watch this polled every 100 ms: about 2% of a busy
// ztunnel's CPU in stat calls through the libuv pool.
import { type FSWatcher, watch } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";

export interface FilePoller {
  close(): void;
}

export function pollFile(path: string, intervalMs: number, onChange: () => void): FilePoller {
  let last: string | undefined;
  let busy = false;
  let again = false;
  const check = async (): Promise<void> => {
    if (busy) {
      again = true; // an event during a check: look once more after it
      return;
    }
    busy = true;
    try {
      const st = await stat(path).catch(() => undefined);
      const key = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : "missing";
      // The first check reports too (one extra read at start), so a change
      // between the caller's own first read and this check is never missed.
      if (key !== last) onChange();
      last = key;
    } finally {
      busy = false;
    }
    if (again) {
      again = false;
      await check();
    }
  };
  const name = basename(path);
  let watcher: FSWatcher | undefined;
  const watchDir = () => {
    if (watcher) return;
    try {
      watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) void check();
      });
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined; // the poll retries the watch
      });
    } catch {
      watcher = undefined; // no directory yet: the poll goes on and retries
    }
  };
  watchDir();
  void check();
  const timer = setInterval(() => {
    watchDir();
    void check();
  }, intervalMs);
  return {
    close() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}

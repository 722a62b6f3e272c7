// Watches one file by polling its stat: calls onChange when it appears, is
// rewritten, replaced (atomic rename) or removed. Polling, because fs.watch
// loses a replaced file and fs.watchFile was seen to miss a file created after
// watching began. Used for the files the local runner hands to components.
import { stat } from "node:fs/promises";

export interface FilePoller {
  close(): void;
}

export function pollFile(path: string, intervalMs: number, onChange: () => void): FilePoller {
  let last: string | undefined;
  let busy = false;
  const check = async () => {
    if (busy) return;
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
  };
  void check();
  const timer = setInterval(() => void check(), intervalMs);
  return {
    close() {
      clearInterval(timer);
    },
  };
}

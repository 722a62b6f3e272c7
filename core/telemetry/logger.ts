// pino logger factory: JSON lines, one child per component, level changeable
// at run time (admin endpoints call setLevel).
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

// Asynchronous writes to stdout: a line (an access-log line per connection on
// the ztunnel's hot path) is queued and written by the event loop, lines
// queued together leave in one write, and nothing blocks on a slow reader.
// minLength 0 writes as soon as the loop is free (tests and supervisors wait
// for lines); pino flushes what is queued synchronously at process exit.
const root = pino(
  {
    level: process.env.AMBIT_LOG_LEVEL ?? "info",
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  },
  pino.destination({ dest: 1, sync: false, minLength: 0 }),
);

/** Writes what is queued now (before an exit that pino's exit hook would not see, e.g. process.abort). */
export function flushLogs(): void {
  try {
    root.flush();
  } catch {
    // nothing queued, or stdout already closed
  }
}

const children = new Map<string, Logger>();

/** The logger of one component (`ztunnel`, `controller.push`, ...). */
export function logger(component: string): Logger {
  let l = children.get(component);
  if (!l) {
    l = root.child({ component });
    children.set(component, l);
  }
  return l;
}

export function setLevel(level: LevelWithSilent, component?: string): void {
  if (component) logger(component).level = level;
  else {
    root.level = level;
    for (const l of children.values()) l.level = level;
  }
}

export function levels(): Record<string, string> {
  const out: Record<string, string> = { "": root.level };
  for (const [k, l] of children) out[k] = l.level;
  return out;
}

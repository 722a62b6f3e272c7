// pino logger factory: JSON lines, one child per component, level changeable
// at run time (admin endpoints call setLevel).
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

const root = pino({
  level: process.env.AMBIT_LOG_LEVEL ?? "info",
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

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

// Reading what a local mesh writes: the log files of its components and pods
// (followed like `tail -f`), the ztunnels' access-log lines in a form people
// read, and the components' admin HTTP over their Unix sockets.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { AmbitError } from "../core/errors/errors.js";
import {
  CONTROLLER_KEY,
  type MeshPaths,
  SYSTEM_NAMESPACE,
  ZTUNNEL_PREFIX,
  ztunnelKey,
} from "./supervisor-plan.js";

export interface LogSource {
  /** What the line is prefixed with when several files are shown. */
  label: string;
  file: string;
}

/**
 * The log files of COMPONENT: `controller`, `ztunnel-NODE`, `supervisor`,
 * `NS/POD` (every container) or `NS/POD/CONTAINER`.
 */
export function logSources(paths: MeshPaths, component: string): LogSource[] {
  if (component === "supervisor") return [{ label: "supervisor", file: paths.supervisorLog }];
  let key: string;
  let container: string | undefined;
  if (component === "controller") [key, container] = [CONTROLLER_KEY, "controller"];
  else if (component.startsWith(ZTUNNEL_PREFIX) && !component.includes("/"))
    [key, container] = [ztunnelKey(component.slice(ZTUNNEL_PREFIX.length)), "ztunnel"];
  else {
    const parts = component.split("/");
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
      throw new AmbitError(
        "CONFIG",
        `'${component}': name controller, ztunnel-NODE, supervisor, NS/POD or NS/POD/CONTAINER`,
      );
    }
    key = `${parts[0]}/${parts[1]}`;
    container = parts[2];
  }
  const dir = paths.podLogDir(key);
  if (container) return [{ label: component, file: path.join(dir, `${container}.log`) }];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".log"));
  } catch {
    // no logs yet
  }
  if (names.length === 0) throw new AmbitError("CONFIG", `no logs for ${component} (looked in ${dir})`);
  return names.sort().map((n) => ({ label: `${key}/${n.slice(0, -4)}`, file: path.join(dir, n) }));
}

export interface FileFollower {
  close(): void;
}

/**
 * Calls onLine for every complete line of the file: from its start (or only
 * what is appended after now, `fromEnd`), then as it grows. Waits for a file
 * that does not exist yet; starts over when it is truncated or replaced.
 */
export function followFile(
  file: string,
  onLine: (line: string) => void,
  opts: { fromEnd?: boolean } = {},
): FileFollower {
  let offset = 0;
  let ino = -1;
  let partial = "";
  let closed = false;
  let reading = false;
  let again = false;
  try {
    const st = fs.statSync(file);
    ino = st.ino;
    if (opts.fromEnd) offset = st.size;
  } catch {
    // appears later
  }
  const read = () => {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        return;
      }
      if (st.ino !== ino || st.size < offset) {
        ino = st.ino;
        offset = 0;
        partial = "";
      }
      if (st.size === offset) return;
      const fd = fs.openSync(file, "r");
      try {
        const buf = Buffer.alloc(Math.min(st.size - offset, 4 << 20));
        const n = fs.readSync(fd, buf, 0, buf.length, offset);
        offset += n;
        const text = partial + buf.subarray(0, n).toString("utf8");
        const lines = text.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) if (l !== "") onLine(l);
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      reading = false;
      if (again) {
        again = false;
        setImmediate(read);
      }
    }
  };
  // Plain polling: it survives the file appearing, being replaced or
  // truncated. (fs.watchFile missed a file created after it started watching
  // in about half of the runs here.)
  const timer = setInterval(read, 200);
  read();
  return {
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

export interface AccessRecord {
  time?: string;
  direction?: string;
  src?: { addr?: string; identity?: string; workload?: string };
  dst?: { addr?: string; identity?: string; workload?: string; service?: string };
  bytesSent?: number;
  bytesReceived?: number;
  durationMs?: number;
  reason?: string;
  msg?: string;
  component?: string;
}

/** The access record of a ztunnel log line, or undefined for any other line. */
export function parseAccessLine(line: string): AccessRecord | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o = JSON.parse(line) as AccessRecord;
    if (o.component === "ztunnel.access" || o.msg === "access") return o;
  } catch {
    // not JSON
  }
  return undefined;
}

/** One readable line: `time node direction src(identity) -> dst(identity) service bytes duration reason`. */
export function formatAccess(node: string, a: AccessRecord): string {
  const side = (p: AccessRecord["src"]) => {
    if (!p) return "?";
    const who = p.workload ?? p.addr ?? "?";
    return p.identity ? `${who} [${p.identity}]` : who;
  };
  const time = a.time ? a.time.slice(11, 23) : "";
  const bytes = a.bytesSent !== undefined ? ` sent=${a.bytesSent}B recv=${a.bytesReceived ?? 0}B` : "";
  const dur = a.durationMs !== undefined ? ` ${a.durationMs}ms` : "";
  const svc = a.dst?.service ? ` via ${a.dst.service}` : "";
  return `${time} ${node} ${a.direction ?? ""} ${side(a.src)} -> ${side(a.dst)}${svc}${bytes}${dur} ${a.reason ?? a.msg ?? ""}`.trim();
}

/** Follows every ztunnel's log and calls onAccess for each access record (only new ones with `fromEnd`). */
export function followAccessLogs(
  paths: MeshPaths,
  nodes: string[],
  onAccess: (node: string, a: AccessRecord) => void,
  opts: { fromEnd?: boolean } = {},
): FileFollower {
  const followers = nodes.map((node) =>
    followFile(
      paths.containerLog(ztunnelKey(node), "ztunnel"),
      (line) => {
        const a = parseAccessLine(line);
        if (a) onAccess(node, a);
      },
      opts,
    ),
  );
  return {
    close: () => {
      for (const f of followers) f.close();
    },
  };
}

/** GET on a component's admin HTTP over its Unix socket. */
export function adminGet(
  socketPath: string,
  urlPath: string,
  timeoutMs = 3000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () =>
      req.destroy(new AmbitError("LOCAL_STATE", `${socketPath}: no answer to ${urlPath} in ${timeoutMs} ms`)),
    );
    req.on("error", reject);
  });
}

/** GET and parse JSON, with an error that says which component did not answer. */
export async function adminJson<T>(socketPath: string, urlPath: string, what: string): Promise<T> {
  let r: { status: number; body: string };
  try {
    r = await adminGet(socketPath, urlPath);
  } catch (e) {
    throw new AmbitError("LOCAL_STATE", `${what} does not answer on ${socketPath}: ${(e as Error).message}`);
  }
  if (r.status !== 200)
    throw new AmbitError("LOCAL_STATE", `${what}: ${urlPath} answered ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as T;
}

/** `namespace` of a component key, for display. */
export function shortComponentName(key: string): string {
  return key.startsWith(`${SYSTEM_NAMESPACE}/`) ? key.slice(SYSTEM_NAMESPACE.length + 1) : key;
}

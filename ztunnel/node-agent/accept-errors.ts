// Admission at a pod's listeners when file descriptors run short. Every
// accepted connection costs the ztunnel descriptors (the socket, often an
// upstream one), and so do the things that keep the open connections alive
// (xDS and CA reconnects, HBONE pool connections). So new connections are
// refused while the process is within a reserve of its RLIMIT_NOFILE: the
// connection is reset at once, counted and logged (at most a line a second),
// and the reserve stays for the connections already served.
//
// At the hard limit itself libuv accepts and closes pending connections
// without telling Node (its reserve-fd trick), so that case cannot be
// counted; the reserve keeps the ztunnel from getting there. A listener's
// 'error' (accept failing otherwise) is counted too instead of being thrown.
import fs from "node:fs";
import type net from "node:net";
import { logger } from "../../core/telemetry/logger.js";
import { counter } from "../../core/telemetry/metrics.js";
import { memoryAdmission } from "../proxy/memory-pressure.js";

const log = logger("ztunnel.accept");

const refusedTotal = () =>
  counter(
    "ambit_ztunnel_refused_connections_total",
    "New connections a pod listener refused, by listener and reason (fd_limit: within the reserve of RLIMIT_NOFILE; else the accept errno)",
    ["listener", "reason"],
  );

/** Descriptors kept free for the connections already served (and the ztunnel's own needs). */
export function fdReserve(limit: number): number {
  return Math.max(16, Math.ceil(limit * 0.02));
}

/** The soft RLIMIT_NOFILE from /proc/self/limits (it can change at run time: prlimit). */
export function readNofileLimit(limitsText: string): number | undefined {
  const line = limitsText.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.split(/\s+/)[3];
  if (!soft || soft === "unlimited") return undefined;
  const n = Number(soft);
  return Number.isFinite(n) ? n : undefined;
}

const SAMPLE_MS = 1000;

/**
 * Descriptors a connection is assumed to cost between samples: the accepted
 * socket and, often, one upstream (inbound to the app; outbound when the
 * pool opens a connection).
 */
const FDS_PER_CONNECTION = 2;

/** Descriptors in use, sampled once a second, plus what the connections admitted since cost. */
class FdBudget {
  private used = 0;
  private admittedSinceSample = 0;
  private limit: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  private sample(): void {
    try {
      this.limit = readNofileLimit(fs.readFileSync("/proc/self/limits", "utf8"));
      this.used = fs.readdirSync("/proc/self/fd").length;
    } catch {
      this.limit = undefined; // no /proc: admit everything
    }
    this.admittedSinceSample = 0;
  }

  admit(): boolean {
    if (!this.timer) {
      this.sample();
      this.timer = setInterval(() => this.sample(), SAMPLE_MS);
      this.timer.unref();
    }
    if (this.limit === undefined) return true;
    if (this.used + this.admittedSinceSample * FDS_PER_CONNECTION >= this.limit - fdReserve(this.limit)) {
      // Re-check now: connections may have closed since the last sample.
      this.sample();
      if (this.used >= this.limit - fdReserve(this.limit)) return false;
    }
    this.admittedSinceSample++;
    return true;
  }

  status(): { used: number; limit: number | undefined } {
    return { used: this.used + this.admittedSinceSample * FDS_PER_CONNECTION, limit: this.limit };
  }
}

const budget = new FdBudget();

const lastLogged = new Map<string, { at: number; suppressed: number }>();

function refused(listener: string, reason: string, message: string): void {
  refusedTotal().inc({ listener, reason });
  const key = `${listener}/${reason}`;
  const now = Date.now();
  const last = lastLogged.get(key);
  if (last && now - last.at < 1000) {
    last.suppressed++;
    return;
  }
  lastLogged.set(key, { at: now, suppressed: 0 });
  log.warn({ listener, reason, refusedSinceLastLine: last?.suppressed ?? 0, fds: budget.status() }, message);
}

/** Wraps a listener's connection handler: refuses (resets) new connections while descriptors or memory are short. */
export function admitWithinFdLimit(
  listener: string,
  onConnection: (s: net.Socket) => void,
): (s: net.Socket) => void {
  return (socket) => {
    // Memory pressure: counted there, logged once per episode (not per connection).
    if (!memoryAdmission.admit(listener)) {
      socket.on("error", () => {});
      socket.resetAndDestroy();
      return;
    }
    if (budget.admit()) return onConnection(socket);
    socket.on("error", () => {});
    socket.resetAndDestroy();
    refused(
      listener,
      "fd_limit",
      "file-descriptor limit near: refusing new connections, serving the open ones",
    );
  };
}

/** A listener's accept errors are counted and logged instead of thrown (which would end the process). */
export function refuseOnAcceptError(server: net.Server, listener: string): void {
  server.on("error", (err: NodeJS.ErrnoException) => {
    refused(listener, err.code ?? "unknown", `accept failed: ${err.message}`);
  });
}

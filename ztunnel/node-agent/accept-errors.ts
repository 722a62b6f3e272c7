// What a pod's listener does when accept() fails, most often EMFILE/ENFILE
// at the file-descriptor limit. libuv has already accepted and closed the
// pending connection (its reserve-fd trick), so the client sees its
// connection refused at once instead of hanging in the backlog; the
// ztunnel keeps serving the connections it has. Without an 'error' listener
// Node would throw and take every connection of the node down with it.
import type net from "node:net";
import { logger } from "../../core/telemetry/logger.js";
import { counter } from "../../core/telemetry/metrics.js";

const log = logger("ztunnel.accept");

const acceptErrors = () =>
  counter(
    "ambit_ztunnel_accept_errors_total",
    "Connections a pod listener could not accept (refused), by listener and errno code (EMFILE: fd limit)",
    ["listener", "code"],
  );

/** One log line per listener kind and code per interval, with how many were refused since the last. */
const LOG_INTERVAL_MS = 1000;
const lastLogged = new Map<string, { at: number; suppressed: number }>();

export function refuseOnAcceptError(server: net.Server, listener: string): void {
  server.on("error", (err: NodeJS.ErrnoException) => {
    const code = err.code ?? "unknown";
    acceptErrors().inc({ listener, code });
    const key = `${listener}/${code}`;
    const now = Date.now();
    const last = lastLogged.get(key);
    if (last && now - last.at < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    lastLogged.set(key, { at: now, suppressed: 0 });
    log.warn(
      { listener, code, refusedSinceLastLine: last?.suppressed ?? 0 },
      code === "EMFILE" || code === "ENFILE"
        ? "file-descriptor limit reached: refusing new connections, serving the open ones"
        : `accept failed: ${err.message}`,
    );
  });
}

// Forwarding with retries and timeouts: picks an endpoint per attempt
// (avoiding the last one), applies the connection-pool circuit breaker,
// reports outcomes to outlier detection, retries on the route's codes
// (and connect failures, resets and per-try timeouts) with exponential
// backoff, and answers 503/504 (gRPC UNAVAILABLE/DEADLINE_EXCEEDED) itself
// when nothing better is possible.
import type { WaypointRoute } from "../core/model/waypoint.js";
import type { ReplayableBody } from "./body.js";
import { type Exchange, localReply } from "./exchange.js";
import type { EndpointState } from "./lb/endpoint.js";
import type { WaypointState } from "./state.js";
import { retriesTotal } from "./telemetry.js";
import { type AttemptResult, attemptH1, attemptH2 } from "./upstream/attempt.js";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function backoffMs(base: number, retry: number): number {
  const cap = base * 2 ** Math.min(retry - 1, 5);
  return cap / 2 + Math.random() * (cap / 2);
}

export async function forward(
  state: WaypointState,
  ex: Exchange,
  route: WaypointRoute,
  clusterName: string,
  body: ReplayableBody | undefined,
): Promise<void> {
  const live = state.cluster(clusterName);
  if (!live) {
    localReply(ex, 500, `backend ${clusterName} not found`);
    return;
  }
  const cluster = live.state;
  const slot = cluster.acquire();
  if (slot === false) {
    ex.flags = "UO";
    localReply(ex, 503, "upstream connect error: overflow", { "x-ambit-overloaded": "true" });
    return;
  }
  if (slot !== true) await slot;
  try {
    const retry = route.retry;
    const maxAttempts = 1 + (retry && retry.attempts > 0 ? retry.attempts : 0);
    const t = route.timeouts;
    let deadline: number | undefined;
    const start = Date.now();
    if (t?.requestMs) deadline = start + t.requestMs;
    if (ex.grpcTimeoutMs !== undefined)
      deadline = Math.min(deadline ?? Number.POSITIVE_INFINITY, start + ex.grpcTimeoutMs);
    const useH2 = ex.grpc || cluster.protocol === "http2" || cluster.protocol === "grpc";
    let prev: EndpointState | undefined;
    for (let attempt = 1; ; attempt++) {
      ex.attempts = attempt;
      const ep = cluster.pick(ex.hashKey !== undefined ? { hashKey: ex.hashKey } : {}, prev);
      if (!ep) {
        ex.flags = "UH";
        localReply(ex, 503, "no healthy upstream");
        return;
      }
      prev = ep;
      ex.upstream = ep.key;
      ex.endpoint = ep;
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      if (remaining !== undefined && remaining <= 0) {
        ex.flags = "UT";
        localReply(ex, 504, "upstream request timeout", {}, 4);
        return;
      }
      let tryMs = t?.backendRequestMs;
      let byDeadline = false;
      if (remaining !== undefined && (tryMs === undefined || remaining < tryMs)) {
        tryMs = remaining;
        byDeadline = true;
      }
      ep.active++;
      let r: AttemptResult;
      try {
        r = await (useH2
          ? attemptH2(live.pool, ep, ex, body, tryMs)
          : attemptH1(live.pool, ep, ex, body, tryMs));
      } finally {
        ep.active--;
      }
      cluster.report(ep, r.kind === "response" ? r.status : r.outcome);
      if (ex.res.destroyed) {
        if (r.kind === "response") r.discard();
        return;
      }
      const last =
        attempt >= maxAttempts || !retry || (body !== undefined && !body.replayable) || body === undefined;
      const timedOutWhole = r.kind === "error" && r.outcome === "timeout" && byDeadline;
      let retryable = false;
      if (!last && !timedOutWhole) {
        if (r.kind === "error") retryable = true;
        else
          retryable =
            retry!.codes.includes(r.status) ||
            (r.grpcStatus !== undefined && retry!.grpcCodes.includes(r.grpcStatus));
      }
      if (retryable) {
        if (r.kind === "response") r.discard();
        retriesTotal.inc({ cluster: clusterName });
        let wait = backoffMs(retry!.backoffMs || 25, attempt);
        if (deadline !== undefined) wait = Math.min(wait, Math.max(0, deadline - Date.now()));
        if (wait > 0) await sleep(wait);
        continue;
      }
      if (r.kind === "response") {
        await r.commit();
        return;
      }
      if (r.outcome === "timeout") {
        ex.flags = "UT";
        localReply(ex, 504, "upstream request timeout", {}, 4);
      } else {
        ex.flags = r.outcome === "connect-error" ? "UF" : "UR";
        localReply(
          ex,
          503,
          `upstream connect error or disconnect/reset before headers: ${r.error?.message ?? r.outcome}`,
          {},
          14,
        );
      }
      return;
    }
  } finally {
    cluster.release();
  }
}

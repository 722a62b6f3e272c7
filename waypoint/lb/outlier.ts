// Outlier detection: consecutive 5xx or gateway errors (502/503/504 and
// connect failures) eject an endpoint for baseEjectionTime × times ejected,
// never more than maxEjectionPercent of the cluster at once. Ejections end
// lazily: the cluster's healthy list is recomputed when the earliest expires.
import type { OutlierDetectionPolicy } from "../../core/model/waypoint.js";
import { counter } from "../../core/telemetry/metrics.js";
import type { EndpointState } from "./endpoint.js";

export const ejectionsTotal = counter(
  "ambit_waypoint_ejections_total",
  "Endpoints ejected by outlier detection",
  ["cluster"],
);

/** An upstream outcome: an HTTP status, or a failure before any response. */
export type Outcome = number | "connect-error" | "reset" | "timeout";

export function isGatewayError(o: Outcome): boolean {
  return typeof o !== "number" || o === 502 || o === 503 || o === 504;
}

/** Returns true when the endpoint was just ejected. */
export function recordOutcome(
  policy: OutlierDetectionPolicy | undefined,
  ep: EndpointState,
  outcome: Outcome,
  all: EndpointState[],
  now: number,
  cluster: string,
): boolean {
  if (!policy) return false;
  const five = typeof outcome !== "number" || outcome >= 500;
  if (!five) {
    ep.consecutive5xx = 0;
    ep.consecutiveGateway = 0;
    return false;
  }
  ep.consecutive5xx++;
  if (isGatewayError(outcome)) ep.consecutiveGateway++;
  else ep.consecutiveGateway = 0;
  const trip =
    (policy.consecutive5xxErrors !== undefined &&
      policy.consecutive5xxErrors > 0 &&
      ep.consecutive5xx >= policy.consecutive5xxErrors) ||
    (policy.consecutiveGatewayErrors !== undefined &&
      policy.consecutiveGatewayErrors > 0 &&
      ep.consecutiveGateway >= policy.consecutiveGatewayErrors);
  if (!trip || ep.ejectedUntil > now) return false;
  let ejected = 0;
  for (const e of all) if (e.ejectedUntil > now) ejected++;
  if (((ejected + 1) * 100) / all.length > policy.maxEjectionPercent) return false;
  ep.ejections++;
  ep.ejectedUntil = now + policy.baseEjectionTimeMs * ep.ejections;
  ep.consecutive5xx = 0;
  ep.consecutiveGateway = 0;
  ejectionsTotal.inc({ cluster });
  return true;
}

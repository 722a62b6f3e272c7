// Fault injection (ambit.dev FaultInjection via an ExtensionRef): a fixed
// delay and/or an abort, each applied to a percentage of requests.
import type { FaultPolicy } from "../../core/model/waypoint.js";

export interface FaultDecision {
  delayMs: number;
  abort?: { httpStatus?: number; grpcStatus?: number };
}

const NONE: FaultDecision = { delayMs: 0 };

function hit(percent: number, rnd: () => number): boolean {
  return percent >= 100 || (percent > 0 && rnd() * 100 < percent);
}

export function decideFault(f: FaultPolicy, rnd: () => number = Math.random): FaultDecision {
  const delay = f.delay && hit(f.delay.percent, rnd) ? f.delay.fixedDelayMs : 0;
  const abort = f.abort && hit(f.abort.percent, rnd) ? f.abort : undefined;
  if (!delay && !abort) return NONE;
  return abort
    ? {
        delayMs: delay,
        abort: {
          ...(abort.httpStatus ? { httpStatus: abort.httpStatus } : {}),
          ...(abort.grpcStatus !== undefined ? { grpcStatus: abort.grpcStatus } : {}),
        },
      }
    : { delayMs: delay };
}

/** HTTP status → gRPC code, as gRPC's http-grpc-status-mapping. */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

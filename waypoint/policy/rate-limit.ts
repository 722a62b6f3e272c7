// Local rate limit: a token bucket per service, refilled lazily on use.
// Denials answer 429 with the IETF RateLimit-Policy / RateLimit headers and
// Retry-After (seconds until the next refill).
import type { RateLimitPolicy } from "../../core/model/waypoint.js";
import { counter } from "../../core/telemetry/metrics.js";

export const ratelimitedTotal = counter(
  "ambit_waypoint_ratelimited_total",
  "Requests refused by the local rate limit",
  ["destination_service"],
);

export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly policyHeader: string;
  constructor(
    readonly policy: RateLimitPolicy,
    now = Date.now(),
  ) {
    this.tokens = policy.maxTokens;
    this.last = now;
    const w = Math.max(1, Math.ceil(policy.fillIntervalMs / 1000));
    this.policyHeader = `"local";q=${policy.tokensPerFill};w=${w}`;
  }

  private refill(now: number): void {
    const n = Math.floor((now - this.last) / this.policy.fillIntervalMs);
    if (n > 0) {
      this.tokens = Math.min(this.policy.maxTokens, this.tokens + n * this.policy.tokensPerFill);
      this.last += n * this.policy.fillIntervalMs;
    }
  }

  /** True when a token was taken. */
  take(now = Date.now()): boolean {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens--;
      return true;
    }
    return false;
  }

  remaining(): number {
    return Math.floor(this.tokens);
  }

  /** Whole seconds until the next refill (at least 1). */
  resetSeconds(now = Date.now()): number {
    return Math.max(1, Math.ceil((this.last + this.policy.fillIntervalMs - now) / 1000));
  }

  /** Headers for a 429. */
  deniedHeaders(now = Date.now()): Record<string, string> {
    const t = this.resetSeconds(now);
    return {
      "ratelimit-policy": this.policyHeader,
      ratelimit: `"local";r=${this.remaining()};t=${t}`,
      "retry-after": String(t),
    };
  }
}

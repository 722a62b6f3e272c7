// NACK accounting for the delta ADS server: a reason label of bounded
// cardinality per type (a proxy's error text is free-form), and one warning
// per reason per interval, so that a NACK storm (every proxy rejecting the
// same change) logs once rather than once per proxy.

/** Distinct NACK reasons kept as label values per type; beyond, "other". */
const MAX_NACK_REASONS = 50;
const MAX_REASON_LENGTH = 120;
const NACK_LOG_INTERVAL_MS = 10_000;

export class NackLog {
  private readonly reasons = new Map<string, Set<string>>();
  private readonly loggedAt = new Map<string, number>();

  /** The metric label for a NACK's message: the message itself (whitespace folded, cut), or "other" past the bound. */
  reason(type: string, message: string): string {
    let seen = this.reasons.get(type);
    if (!seen) {
      seen = new Set();
      this.reasons.set(type, seen);
    }
    const reason = message.replace(/\s+/g, " ").slice(0, MAX_REASON_LENGTH);
    if (seen.has(reason)) return reason;
    if (seen.size >= MAX_NACK_REASONS) return "other";
    seen.add(reason);
    return reason;
  }

  /** The level to log this NACK at: "warn" once per type and reason per interval, else "debug". */
  level(type: string, reason: string, now = Date.now()): "warn" | "debug" {
    const key = `${type}\u0000${reason}`;
    const last = this.loggedAt.get(key);
    if (last !== undefined && last + NACK_LOG_INTERVAL_MS > now) return "debug";
    this.loggedAt.set(key, now);
    return "warn";
  }
}

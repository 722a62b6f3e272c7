// The ztunnel's certificates, one per identity of the pods on its node:
// fetched on demand (concurrent requests share one CSR), rotated at half-life,
// and never handed out expired: a caller whose certificate has run out waits
// for the CA (retrying with backoff) instead of getting a dead certificate.
import { EventEmitter } from "node:events";
import { createSecureContext, type SecureContext } from "node:tls";
import { Gauge } from "prom-client";
import { AmbitError } from "../../core/errors/errors.js";
import { type Identity, identityUri } from "../../core/identity/spiffe.js";
import { type Logger, logger as makeLogger } from "../../core/telemetry/logger.js";
import { counter, registry } from "../../core/telemetry/metrics.js";
import type { CertificateSource, IssuedCertificate } from "./ca-client.js";

export interface CertBundle {
  /** The SPIFFE URI. */
  identity: string;
  keyPem: string;
  /** Leaf then intermediates. */
  certChainPem: string[];
  rootsPem: string[];
  notBefore: Date;
  notAfter: Date;
  /** When this manager will replace it (half-life). */
  rotateAt: Date;
  /** TLS 1.3 context with key, chain and roots, built once per bundle. */
  secureContext: SecureContext;
}

export interface CertManagerOptions {
  client: CertificateSource;
  trustDomain: string;
  logger?: Logger;
  /** Retry backoff of failed requests (defaults 200 ms doubling to 15 s, with jitter). */
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface CertStatus {
  identity: string;
  state: "pending" | "valid" | "rotating" | "expired";
  notBefore?: string;
  notAfter?: string;
  rotateAt?: string;
  /** Failed requests since the last success. */
  failures: number;
  lastError?: string;
}

interface Entry {
  uri: string;
  bundle?: CertBundle;
  inflight?: Promise<CertBundle>;
  rotateTimer?: NodeJS.Timeout;
  expiryTimer?: NodeJS.Timeout;
  failures: number;
  lastError?: string;
}

// setTimeout's limit; a 24h certificate is far below it, a long one is re-checked.
const MAX_TIMER_MS = 2 ** 31 - 1;

const live = new Set<CertManager>();
const EXPIRY_METRIC = "ambit_cert_expiry_seconds";
// Seconds until expiry are computed at scrape time, across every manager of the process.
if (!registry.getSingleMetric(EXPIRY_METRIC)) {
  new Gauge({
    name: EXPIRY_METRIC,
    help: "Seconds until the certificate of an identity served by this ztunnel expires",
    labelNames: ["identity"],
    registers: [registry],
    collect() {
      this.reset();
      const now = Date.now();
      for (const m of live) {
        for (const b of m.bundles())
          this.set({ identity: b.identity }, Math.round((b.notAfter.getTime() - now) / 1000));
      }
    },
  });
}

const expired = counter(
  "ambit_cert_expired_total",
  "Certificates that reached their end before the CA replaced them; connections of that identity wait for the CA (fail closed)",
);
const refused = counter(
  "ambit_cert_expired_refusals_total",
  "Requests for a certificate that had expired (not handed out: the caller waits for a fresh one)",
);

/** Rotation and expiry timers do not keep the process alive; retry timers do (someone may be waiting). */
function timer(ms: number, fn: () => void, unref = true): NodeJS.Timeout {
  const t = setTimeout(fn, Math.max(0, Math.min(ms, MAX_TIMER_MS)));
  if (unref) t.unref();
  return t;
}

/**
 * A certificate this close to its end is not handed out: a tenth of its
 * half-life (a twentieth of its life as received; notBefore is backdated, so
 * it is not used), at most 5 s.
 */
function usable(b: CertBundle, now: number): boolean {
  const margin = Math.min(5000, (b.notAfter.getTime() - b.rotateAt.getTime()) / 10);
  return b.notAfter.getTime() - margin > now;
}

export class CertManager extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly opts: CertManagerOptions) {
    super();
    this.log = opts.logger ?? makeLogger("ztunnel.certs");
  }

  start(): void {
    if (this.closed) throw new AmbitError("CONFIG", "CertManager: start() after close()");
    live.add(this);
  }

  /** Stops rotations and retries; pending get() calls reject. The client is its owner's to close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const e of this.entries.values()) this.clearTimers(e);
    this.entries.clear();
    live.delete(this);
  }

  /** A valid certificate for `identity`: cached, or fetched (once, however many callers ask). */
  get(identity: Identity | string): Promise<CertBundle> {
    if (this.closed) return Promise.reject(new AmbitError("CONFIG", "CertManager is closed"));
    const uri = identityUri(identity);
    const td = uri.slice("spiffe://".length, uri.indexOf("/", "spiffe://".length));
    if (td !== this.opts.trustDomain) {
      return Promise.reject(
        new AmbitError(
          "INVALID_FIELD",
          `identity ${uri}: field trustDomain: not the mesh's ${this.opts.trustDomain}`,
        ),
      );
    }
    let e = this.entries.get(uri);
    if (!e) {
      e = { uri, failures: 0 };
      this.entries.set(uri, e);
    }
    if (e.bundle && usable(e.bundle, Date.now())) return Promise.resolve(e.bundle);
    if (e.bundle) refused.inc();
    return this.ensureFetch(e);
  }

  /** The pod(s) of this identity left the node: drop its certificate and stop rotating it. */
  forget(identity: Identity | string): void {
    const uri = identityUri(identity);
    const e = this.entries.get(uri);
    if (!e) return;
    this.clearTimers(e);
    this.entries.delete(uri);
  }

  /** For the admin config dump. */
  list(): CertStatus[] {
    const now = Date.now();
    return [...this.entries.values()].map((e) => {
      const b = e.bundle;
      const state: CertStatus["state"] = !b
        ? "pending"
        : !usable(b, now)
          ? "expired"
          : e.inflight
            ? "rotating"
            : "valid";
      return {
        identity: e.uri,
        state,
        ...(b
          ? {
              notBefore: b.notBefore.toISOString(),
              notAfter: b.notAfter.toISOString(),
              rotateAt: b.rotateAt.toISOString(),
            }
          : {}),
        failures: e.failures,
        ...(e.lastError ? { lastError: e.lastError } : {}),
      };
    });
  }

  /** Current bundles (for metrics). */
  bundles(): CertBundle[] {
    const out: CertBundle[] = [];
    for (const e of this.entries.values()) if (e.bundle) out.push(e.bundle);
    return out;
  }

  private clearTimers(e: Entry): void {
    if (e.rotateTimer) clearTimeout(e.rotateTimer);
    if (e.expiryTimer) clearTimeout(e.expiryTimer);
    e.rotateTimer = undefined;
    e.expiryTimer = undefined;
  }

  private ensureFetch(e: Entry): Promise<CertBundle> {
    if (!e.inflight) {
      const p = this.fetchUntilDone(e);
      e.inflight = p;
      const clear = () => {
        if (e.inflight === p) e.inflight = undefined;
      };
      p.then(clear, clear);
    }
    return e.inflight;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.abort.signal;
      if (signal.aborted) return reject(new AmbitError("CONFIG", "CertManager is closed"));
      const t = timer(
        ms,
        () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        false,
      );
      const onAbort = () => {
        clearTimeout(t);
        reject(new AmbitError("CONFIG", "CertManager is closed"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Asks the CA until it answers with a usable certificate; only close() or forget() ends it otherwise. */
  private async fetchUntilDone(e: Entry): Promise<CertBundle> {
    const initial = this.opts.backoff?.initialMs ?? 200;
    const max = this.opts.backoff?.maxMs ?? 15_000;
    let delay = initial;
    for (;;) {
      if (this.closed) throw new AmbitError("CONFIG", "CertManager is closed");
      if (this.entries.get(e.uri) !== e)
        throw new AmbitError("CONFIG", `certificate of ${e.uri} was forgotten while being requested`);
      try {
        const issued = await this.opts.client.fetch(e.uri);
        if (issued.notAfter.getTime() <= Date.now())
          throw new AmbitError("CA_REFUSED", `the CA issued an already expired certificate for ${e.uri}`);
        if (this.closed) throw new AmbitError("CONFIG", "CertManager is closed");
        return this.install(e, issued);
      } catch (err) {
        if (this.closed) throw err;
        e.failures++;
        e.lastError = (err as Error).message;
        this.emit("fetchError", e.uri, err, e.failures);
        // Bounded by the backoff: at most one line per attempt.
        this.log.warn(
          { identity: e.uri, attempt: e.failures, retryInMs: delay },
          `certificate request failed: ${(err as Error).message}`,
        );
        await this.sleep(delay * (0.8 + Math.random() * 0.4));
        delay = Math.min(delay * 2, max);
      }
    }
  }

  private install(e: Entry, issued: IssuedCertificate): CertBundle {
    const now = Date.now();
    const rotateAt = new Date(now + (issued.notAfter.getTime() - now) / 2);
    const bundle: CertBundle = {
      identity: issued.identity,
      keyPem: issued.keyPem,
      certChainPem: issued.certChainPem,
      rootsPem: issued.rootsPem,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      rotateAt,
      secureContext: createSecureContext({
        key: issued.keyPem,
        cert: issued.certChainPem.join(""),
        ca: issued.rootsPem,
        minVersion: "TLSv1.3",
      }),
    };
    // forget() while the request was out: hand the result to its waiters, keep nothing.
    if (this.entries.get(e.uri) !== e) return bundle;
    const previous = e.bundle;
    e.bundle = bundle;
    e.failures = 0;
    e.lastError = undefined;
    this.clearTimers(e);
    e.rotateTimer = timer(rotateAt.getTime() - now, () => {
      e.rotateTimer = undefined;
      if (this.entries.get(e.uri) !== e || this.closed) return;
      this.ensureFetch(e).catch(() => {}); // errors are retried inside; only close() ends it
    });
    e.expiryTimer = timer(bundle.notAfter.getTime() - now, () => {
      e.expiryTimer = undefined;
      if (e.bundle !== bundle) return;
      expired.inc();
      this.log.error(
        {
          identity: e.uri,
          notAfter: bundle.notAfter.toISOString(),
          failures: e.failures,
          lastError: e.lastError,
        },
        "certificate expired before the CA renewed it: connections of this identity wait for the CA (fail closed)",
      );
      this.emit("expired", e.uri);
    });
    this.emit("issued", bundle, previous);
    if (previous) this.emit("rotated", bundle, previous);
    return bundle;
  }
}

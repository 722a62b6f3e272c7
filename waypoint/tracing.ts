// Request spans over OTLP/HTTP with the OpenTelemetry JS SDK, only when an
// endpoint is configured: the SDK is imported by start(), so a waypoint
// without --otlp-endpoint loads none of it and pays one null check per request.
//
// The data path never waits on the collector: spans end into a bounded queue
// (BatchSpanProcessor, exported in the background); when the queue is full
// the span is dropped and counted, and failed exports are counted too.
import type { Attributes, Span, Tracer } from "@opentelemetry/api";
import type { ReadableSpan, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { logger } from "../core/telemetry/logger.js";
import { counter } from "../core/telemetry/metrics.js";
import type { TraceContext } from "./telemetry.js";

const log = logger("waypoint.tracing");

export const spansDroppedTotal = counter(
  "ambit_waypoint_spans_dropped_total",
  "Request spans not delivered to the OTLP collector",
  ["reason"],
);
export const spansExportedTotal = counter(
  "ambit_waypoint_spans_exported_total",
  "Request spans delivered to the OTLP collector",
);

export interface TracingOptions {
  /** OTLP/HTTP endpoint: a base URL (…/v1/traces is appended) or the full traces URL. */
  endpoint: string;
  serviceName: string;
  /** Resource attributes (e.g. the gateway). */
  resource?: Attributes;
  /** Spans held at most (queued or being exported); beyond it spans are dropped. Default 2048. */
  maxQueue?: number;
  /** How long one export may take. Default 5000 ms. */
  exportTimeoutMs?: number;
  /** Export cadence. Default 1000 ms. */
  scheduledDelayMs?: number;
  /** Spans per export request. Default 512. */
  maxBatch?: number;
}

/** What the proxy tells the tracer when a request ends. */
export interface SpanEnd {
  method: string;
  code: number;
  route?: string;
  upstream?: string;
  attempts: number;
  fault?: string;
  flags?: string;
  service?: string;
  sourcePrincipal?: string;
  path: string;
  requestBytes: number;
  responseBytes: number;
}

export function tracesUrl(endpoint: string): string {
  const u = endpoint.replace(/\/+$/, "");
  return u.endsWith("/v1/traces") ? u : `${u}/v1/traces`;
}

export class RequestTracer {
  private tracer?: Tracer;
  private shutdown?: () => Promise<void>;
  private flusher?: () => Promise<void>;
  private api?: typeof import("@opentelemetry/api");

  constructor(private readonly opts: TracingOptions) {}

  async start(): Promise<void> {
    const [api, sdk, otlp, res] = await Promise.all([
      import("@opentelemetry/api"),
      import("@opentelemetry/sdk-trace-base"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/resources"),
    ]);
    const max = this.opts.maxQueue ?? 2048;
    const timeout = this.opts.exportTimeoutMs ?? 5000;
    const exporter = new otlp.OTLPTraceExporter({
      url: tracesUrl(this.opts.endpoint),
      timeoutMillis: timeout,
      concurrencyLimit: 4,
    });
    const batch = new sdk.BatchSpanProcessor(new CountingExporter(exporter, this), {
      maxQueueSize: max,
      maxExportBatchSize: Math.min(this.opts.maxBatch ?? 512, max),
      scheduledDelayMillis: this.opts.scheduledDelayMs ?? 1000,
      exportTimeoutMillis: timeout,
    });
    const provider = new sdk.BasicTracerProvider({
      resource: res.resourceFromAttributes({ "service.name": this.opts.serviceName, ...this.opts.resource }),
      spanProcessors: [new BoundedProcessor(batch, max, this)],
    });
    this.api = api;
    this.tracer = provider.getTracer("ambit-waypoint");
    this.shutdown = () => provider.shutdown();
    this.flusher = () => provider.forceFlush();
    log.info({ endpoint: tracesUrl(this.opts.endpoint) }, "exporting request spans over OTLP/HTTP");
  }

  /** Spans held now (queued or in an export). */
  pending = 0;
  private idleWaiters: (() => void)[] = [];

  /** Resolves once no span is queued or being exported (tests, drain). */
  whenIdle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** @internal called as exports settle */
  released(n: number): void {
    this.pending = Math.max(0, this.pending - n);
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Starts the request's server span, child of the caller's span when the
   * request carried a traceparent. Rewrites `trace` so the traceparent sent
   * upstream names this span. Undefined before start() finished.
   */
  begin(trace: TraceContext, method: string, authority: string): Span | undefined {
    const api = this.api;
    if (!api || !this.tracer) return undefined;
    let ctx = api.ROOT_CONTEXT;
    if (trace.parentId)
      ctx = api.trace.setSpanContext(ctx, {
        traceId: trace.traceId,
        spanId: trace.parentId,
        traceFlags: Number.parseInt(trace.flags, 16) & 1,
        isRemote: true,
      });
    const span = this.tracer.startSpan(
      method,
      {
        kind: api.SpanKind.SERVER,
        attributes: { "http.request.method": method, "server.address": authority },
      },
      ctx,
    );
    const sc = span.spanContext();
    trace.traceId = sc.traceId;
    trace.spanId = sc.spanId;
    return span;
  }

  end(span: Span, e: SpanEnd): void {
    const attrs: Attributes = {
      "http.response.status_code": e.code,
      "url.path": e.path,
      "ambit.retry.attempts": e.attempts,
      "http.request.body.size": e.requestBytes,
      "http.response.body.size": e.responseBytes,
    };
    if (e.route) attrs["ambit.route"] = e.route;
    if (e.upstream) attrs["ambit.upstream"] = e.upstream;
    if (e.fault) attrs["ambit.fault"] = e.fault;
    if (e.flags) attrs["ambit.response_flags"] = e.flags;
    if (e.service) attrs["ambit.destination_service"] = e.service;
    if (e.sourcePrincipal) attrs["ambit.source_principal"] = e.sourcePrincipal;
    span.setAttributes(attrs);
    if (e.route) span.updateName(`${e.method} ${e.route}`);
    if (e.code === 0 || e.code >= 500) span.setStatus({ code: 2 /* ERROR */ });
    span.end();
  }

  /** Exports what is queued now (tests, drain). */
  async flush(): Promise<void> {
    await this.flusher?.().catch(() => {});
  }

  /** Exports what is queued (bounded by the export timeout), then stops. */
  async close(): Promise<void> {
    await this.shutdown?.().catch(() => {});
    this.tracer = undefined;
  }
}

/** Keeps at most `max` spans in flight; drops (and counts) beyond it. */
class BoundedProcessor implements SpanProcessor {
  constructor(
    private readonly inner: SpanProcessor,
    private readonly max: number,
    private readonly owner: { pending: number },
  ) {}
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    if (!(span.spanContext().traceFlags & 1)) return;
    if (this.owner.pending >= this.max) {
      spansDroppedTotal.inc({ reason: "queue_full" });
      return;
    }
    this.owner.pending++;
    this.inner.onEnd(span);
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

/** Counts export outcomes and releases queue room as exports finish. */
class CountingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly owner: { released(n: number): void },
  ) {}
  export(spans: ReadableSpan[], done: Parameters<SpanExporter["export"]>[1]): void {
    let settled = false;
    this.inner.export(spans, (r) => {
      if (settled) return;
      settled = true;
      if (r.code === 0) spansExportedTotal.inc(spans.length);
      else spansDroppedTotal.inc({ reason: "export_failed" }, spans.length);
      this.owner.released(spans.length);
      done(r);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

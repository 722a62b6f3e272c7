// One request's state as it moves through the waypoint, and the replies the
// waypoint makes itself (404, 403, 429, 503...), which gRPC callers get as a
// grpc-status in trailers.
import type http from "node:http";
import type http2 from "node:http2";
import type { HeaderModifier } from "../core/model/waypoint.js";
import { httpToGrpcStatus } from "./filters/fault.js";
import type { HeaderBag } from "./filters/request-header-modifier.js";
import { responseHeaderModifier } from "./filters/response-header-modifier.js";
import type { EndpointState } from "./lb/endpoint.js";
import type { TraceContext } from "./telemetry.js";

export type DownstreamRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type DownstreamResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface Exchange {
  req: DownstreamRequest;
  res: DownstreamResponse;
  method: string;
  /** Path and query sent upstream (after URLRewrite). */
  url: string;
  /** Host sent upstream (after URLRewrite). */
  authority: string;
  /** Headers sent upstream: lower-case, no pseudo or hop-by-hop headers. */
  headers: HeaderBag;
  grpc: boolean;
  /** Downstream is HTTP/2. */
  h2: boolean;
  responseMods?: HeaderModifier[];
  extraResponseHeaders?: Record<string, string>;
  hashKey?: string;
  /** gRPC deadline from grpc-timeout, in ms. */
  grpcTimeoutMs?: number;
  trace: TraceContext;
  attempts: number;
  upstream?: string;
  /** The endpoint the last attempt went to (its workload labels the metrics). */
  endpoint?: EndpointState;
  route?: string;
  code: number;
  requestBytes: number;
  responseBytes: number;
  flags?: string;
  /** Fault filter applied: "delay", "abort" or "delay,abort" (span attribute). */
  fault?: string;
}

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "host",
]);

/** Response headers from upstream (or the waypoint) as sent downstream. */
export function downstreamHeaders(ex: Exchange, src: Record<string, unknown>): HeaderBag {
  const out: HeaderBag = {};
  for (const k in src) {
    if (k.charCodeAt(0) === 58 /* : */ || hopByHop.has(k)) continue;
    out[k] = src[k] as string | string[];
  }
  if (ex.extraResponseHeaders) Object.assign(out, ex.extraResponseHeaders);
  responseHeaderModifier(out, ex.responseMods);
  return out;
}

/** Strips pseudo and hop-by-hop headers in place (the request's own header object is reused). */
export function upstreamHeaders(h: Record<string, string | string[] | undefined>): HeaderBag {
  const conn = h.connection;
  if (typeof conn === "string" && conn.includes(","))
    for (const name of conn.split(",")) delete h[name.trim().toLowerCase()];
  else if (typeof conn === "string") delete h[conn.trim().toLowerCase()];
  for (const k in h) if (k.charCodeAt(0) === 58 || hopByHop.has(k)) delete h[k];
  if (h.te !== undefined && h.te !== "trailers") delete h.te;
  return h as HeaderBag;
}

const GRPC_MESSAGES: Record<number, string> = {
  4: "upstream request timeout",
  7: "RBAC: access denied",
  12: "no route for method",
  14: "upstream unavailable",
  16: "Jwt is missing or invalid",
};

/** A reply made by the waypoint. gRPC callers get HTTP 200 with grpc-status in trailers. */
export function localReply(
  ex: Exchange,
  status: number,
  message: string,
  headers: Record<string, string> = {},
  grpcStatus?: number,
): void {
  const res = ex.res as http.ServerResponse; // same surface as Http2ServerResponse here
  if (res.headersSent) {
    res.destroy();
    return;
  }
  ex.code = status;
  if (ex.grpc) {
    const code = grpcStatus ?? httpToGrpcStatus(status);
    const grpcMessage = encodeURIComponent(message || GRPC_MESSAGES[code] || "");
    const h = downstreamHeaders(ex, { ...headers, "content-type": "application/grpc" });
    if (ex.h2) {
      respondTrailersOnly(ex, 200, { ...h, "grpc-status": String(code), "grpc-message": grpcMessage });
      return;
    }
    res.writeHead(200, h as http.OutgoingHttpHeaders);
    res.addTrailers({ "grpc-status": String(code), "grpc-message": grpcMessage });
    res.end();
    return;
  }
  const body = `${message}\n`;
  const h = downstreamHeaders(ex, {
    ...headers,
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.writeHead(status, h as http.OutgoingHttpHeaders);
  res.end(ex.method === "HEAD" ? undefined : body);
  ex.responseBytes += Buffer.byteLength(body);
}

/**
 * A gRPC "trailers-only" response: one HEADERS frame with END_STREAM,
 * which is how gRPC sends an error with no body (the compat API would add
 * an empty DATA frame, and gRPC clients then miss the status).
 */
export function respondTrailersOnly(ex: Exchange, status: number, headers: HeaderBag): void {
  const stream = (ex.res as http2.Http2ServerResponse).stream;
  ex.code = status;
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ...(headers as http2.OutgoingHttpHeaders), ":status": status }, { endStream: true });
}

/** grpc-timeout (`<n><H|M|S|m|u|n>`) in ms. */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== "string" || v.length < 2) return undefined;
  const n = Number(v.slice(0, -1));
  if (!Number.isFinite(n)) return undefined;
  switch (v[v.length - 1]) {
    case "H":
      return n * 3_600_000;
    case "M":
      return n * 60_000;
    case "S":
      return n * 1000;
    case "m":
      return n;
    case "u":
      return n / 1000;
    case "n":
      return n / 1_000_000;
    default:
      return undefined;
  }
}

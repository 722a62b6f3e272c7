// One attempt to one endpoint, over HTTP/1.1 (pooled agent) or HTTP/2
// (pooled session). It resolves at the response headers, so that the caller
// can still retry, or with an error outcome; `commit` then streams the
// response (and trailers) downstream, `discard` throws it away.
import http from "node:http";
import http2 from "node:http2";
import type { Writable } from "node:stream";
import type { ReplayableBody } from "../body.js";
import { downstreamHeaders, type Exchange, respondTrailersOnly } from "../exchange.js";
import type { EndpointState } from "../lb/endpoint.js";
import type { ClusterPool } from "./pool.js";

export type AttemptResult =
  | {
      kind: "response";
      status: number;
      /** grpc-status of a trailers-only response. */
      grpcStatus?: number;
      commit: () => Promise<void>;
      discard: () => void;
    }
  | { kind: "error"; outcome: "connect-error" | "reset" | "timeout"; error?: Error };

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;

function isConnectError(e: Error): boolean {
  return (e as { code?: string }).code === "UPSTREAM_CONNECT";
}

// Forwards the request body without pipe(): pipe() adds and later removes
// about ten listeners on both streams per request. An HTTP/1.1 request whose
// body has fully arrived (a GET, or a small POST read with its head) is
// handed over at once.
function sendBody(ex: Exchange, body: ReplayableBody | undefined, sink: Writable): void {
  if (body) {
    body.attach(sink);
    return;
  }
  const req = ex.req;
  if (req.readableEnded) {
    sink.end();
    return;
  }
  if (!ex.h2 && (req as http.IncomingMessage).complete) {
    for (let c = req.read() as Buffer | null; c !== null; c = req.read() as Buffer | null) {
      ex.requestBytes += c.length;
      sink.write(c);
    }
    sink.end();
    return;
  }
  const onDrain = () => req.resume();
  req.on("data", (c: Buffer) => {
    ex.requestBytes += c.length;
    if (!sink.write(c)) {
      req.pause();
      sink.once("drain", onDrain);
    }
  });
  req.once("end", () => sink.end());
}

function finishDownstream(ex: Exchange, trailers: Record<string, unknown> | undefined): void {
  const res = ex.res as http.ServerResponse; // same surface as Http2ServerResponse here
  if (trailers) {
    const t: Record<string, string> = {};
    let any = false;
    for (const k in trailers) {
      if (k.charCodeAt(0) === 58) continue;
      t[k] = String(trailers[k]);
      any = true;
    }
    if (any) res.addTrailers(t);
  }
  res.end();
}

function waitDone(ex: Exchange): Promise<void> {
  return new Promise((resolve) => {
    if (ex.res.writableFinished || ex.res.destroyed) resolve();
    else ex.res.once("close", resolve);
  });
}

export function attemptH1(
  pool: ClusterPool,
  ep: EndpointState,
  ex: Exchange,
  body: ReplayableBody | undefined,
  timeoutMs: number | undefined,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const creq = http.request({
      agent: pool.h1Agent(),
      host: ep.ip,
      port: ep.port,
      method: ex.method,
      path: ex.url,
      headers: { ...ex.headers, host: ex.authority } as http.OutgoingHttpHeaders,
      setHost: false,
    });
    const done = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(r);
    };
    if (timeoutMs !== undefined)
      timer = setTimeout(() => {
        done({ kind: "error", outcome: "timeout" });
        body?.detach(creq);
        creq.destroy();
      }, timeoutMs);
    creq.on("error", (e) => {
      body?.detach(creq);
      done({ kind: "error", outcome: isConnectError(e) ? "connect-error" : "reset", error: e });
    });
    // Downstream gone before a response: stop the upstream request.
    const onDownClose = () => {
      if (!ex.res.writableFinished) creq.destroy();
    };
    ex.res.once("close", onDownClose);
    creq.on("response", (resp) => {
      const gs = resp.headers["grpc-status"];
      done({
        kind: "response",
        status: resp.statusCode ?? 502,
        ...(gs !== undefined ? { grpcStatus: Number(gs) } : {}),
        discard: () => {
          ex.res.off("close", onDownClose);
          body?.detach(creq);
          resp.resume();
        },
        commit: () => {
          const res = ex.res as http.ServerResponse; // same surface as Http2ServerResponse here
          ex.code = resp.statusCode ?? 502;
          res.writeHead(ex.code, downstreamHeaders(ex, resp.headers) as http.OutgoingHttpHeaders);
          resp.on("data", (c: Buffer) => {
            ex.responseBytes += c.length;
            if (!res.write(c)) {
              resp.pause();
              res.once("drain", () => resp.resume());
            }
          });
          resp.on("end", () => finishDownstream(ex, resp.rawTrailers.length ? resp.trailers : undefined));
          resp.on("error", () => res.destroy());
          resp.on("aborted", () => res.destroy());
          return waitDone(ex);
        },
      });
    });
    sendBody(ex, body, creq);
  });
}

export async function attemptH2(
  pool: ClusterPool,
  ep: EndpointState,
  ex: Exchange,
  body: ReplayableBody | undefined,
  timeoutMs: number | undefined,
): Promise<AttemptResult> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeout =
    timeoutMs === undefined
      ? undefined
      : new Promise<AttemptResult>((resolve) => {
          timer = setTimeout(() => {
            timedOut = true;
            resolve({ kind: "error", outcome: "timeout" });
          }, timeoutMs);
        });
  const run = async (): Promise<AttemptResult> => {
    let session: http2.ClientHttp2Session;
    try {
      session = await pool.h2Session(ep);
    } catch (e) {
      return { kind: "error", outcome: "connect-error", error: e as Error };
    }
    if (timedOut) return { kind: "error", outcome: "timeout" };
    return new Promise((resolve) => {
      let settled = false;
      const h: http2.OutgoingHttpHeaders = { ...(ex.headers as http2.OutgoingHttpHeaders) };
      h[":method"] = ex.method;
      h[":path"] = ex.url;
      h[":authority"] = ex.authority;
      h[":scheme"] = "http";
      let s: http2.ClientHttp2Stream;
      try {
        s = session.request(h);
      } catch (e) {
        resolve({ kind: "error", outcome: "reset", error: e as Error });
        return;
      }
      const done = (r: AttemptResult) => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      timeout?.then(() => {
        if (!settled) {
          body?.detach(s);
          s.close(http2.constants.NGHTTP2_CANCEL);
        }
      });
      const onDownClose = () => {
        if (!ex.res.writableFinished) s.close(http2.constants.NGHTTP2_CANCEL);
      };
      ex.res.once("close", onDownClose);
      s.on("error", (e) => {
        body?.detach(s);
        done({ kind: "error", outcome: "reset", error: e });
      });
      s.on("close", () => done({ kind: "error", outcome: "reset" }));
      s.on("response", (headers, flags) => {
        const status = Number(headers[":status"] ?? 502);
        const trailersOnly = (flags & END_STREAM) !== 0;
        const gs = headers["grpc-status"];
        let trailers: Record<string, unknown> | undefined;
        s.on("trailers", (t) => {
          trailers = t;
        });
        done({
          kind: "response",
          status,
          ...(gs !== undefined && trailersOnly ? { grpcStatus: Number(gs) } : {}),
          discard: () => {
            ex.res.off("close", onDownClose);
            body?.detach(s);
            s.close(http2.constants.NGHTTP2_CANCEL);
          },
          commit: () => {
            const res = ex.res as http.ServerResponse; // same surface as Http2ServerResponse here
            ex.code = status;
            if (trailersOnly && ex.h2) {
              respondTrailersOnly(ex, status, downstreamHeaders(ex, headers));
              return waitDone(ex);
            }
            res.writeHead(status, downstreamHeaders(ex, headers) as http.OutgoingHttpHeaders);
            s.on("data", (c: Buffer) => {
              ex.responseBytes += c.length;
              if (!res.write(c)) {
                s.pause();
                res.once("drain", () => s.resume());
              }
            });
            s.on("end", () => finishDownstream(ex, trailers));
            s.on("aborted", () => res.destroy());
            s.on("close", () => {
              if (!res.writableEnded) {
                // a reset after the headers: the caller sees a reset too
                if (s.rstCode && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR) res.destroy();
              }
            });
            return waitDone(ex);
          },
        });
      });
      sendBody(ex, body, s);
    });
  };
  const r = await (timeout ? Promise.race([run(), timeout]) : run());
  if (timer) clearTimeout(timer);
  return r;
}

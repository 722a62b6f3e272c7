// RequestMirror: sends a copy of the request to another cluster and throws
// the answer away. The mirror never slows or fails the main request: it gets
// the body without backpressure (dropped when it falls behind), its errors
// are swallowed, and it is cut off after a timeout. Host gets `-shadow`, as
// Envoy does, so backends can tell copies apart.
import http from "node:http";
import type { RouteFilter } from "../../core/model/waypoint.js";
import { counter } from "../../core/telemetry/metrics.js";
import type { ReplayableBody } from "../body.js";
import type { Exchange } from "../exchange.js";
import type { WaypointState } from "../state.js";

type Mirror = Extract<RouteFilter, { type: "RequestMirror" }>;

export const mirroredTotal = counter("ambit_waypoint_mirrored_total", "Requests copied to a mirror", [
  "cluster",
  "result",
]);

const MIRROR_TIMEOUT_MS = 10_000;

export function shadowHost(authority: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(authority);
  return m ? `${m[1]}-shadow${m[2] ?? ""}` : `${authority}-shadow`;
}

export function sendMirror(
  state: WaypointState,
  f: Mirror,
  ex: Exchange,
  body: ReplayableBody | undefined,
): void {
  if (f.percent < 100 && Math.random() * 100 >= f.percent) return;
  const live = state.cluster(f.cluster);
  const ep = live?.state.pick({});
  if (!live || !ep) return;
  if (!live.state.tryAcquire()) return;
  let released = false;
  const release = (result: string) => {
    if (released) return;
    released = true;
    live.state.release();
    mirroredTotal.inc({ cluster: f.cluster, result });
  };
  const grpcOrH2 = ex.grpc || live.state.protocol === "grpc" || live.state.protocol === "http2";
  if (grpcOrH2) {
    live.pool.h2Session(ep).then(
      (session) => {
        const s = session.request({
          ...(ex.headers as Record<string, string>),
          ":method": ex.method,
          ":path": ex.url,
          ":authority": shadowHost(ex.authority),
          ":scheme": "http",
        });
        const timer = setTimeout(() => s.close(), MIRROR_TIMEOUT_MS);
        s.on("error", () => release("error"));
        s.on("close", () => {
          clearTimeout(timer);
          release("done");
        });
        s.resume();
        if (body) body.attachSide(s);
        else s.end();
      },
      () => release("error"),
    );
    return;
  }
  const creq = http.request({
    agent: live.pool.h1Agent(),
    host: ep.ip,
    port: ep.port,
    method: ex.method,
    path: ex.url,
    headers: { ...ex.headers, host: shadowHost(ex.authority) } as http.OutgoingHttpHeaders,
    setHost: false,
    timeout: MIRROR_TIMEOUT_MS,
  });
  // A timer, not the socket timeout: an HBONE stream has no socket timeout (socketLike's no-op).
  const timer = setTimeout(() => creq.destroy(), MIRROR_TIMEOUT_MS);
  creq.on("timeout", () => creq.destroy());
  creq.on("error", () => release("error"));
  creq.on("response", (resp) => {
    resp.resume();
    resp.on("end", () => release("done"));
    resp.on("error", () => release("error"));
  });
  creq.on("close", () => {
    clearTimeout(timer);
    release("closed");
  });
  if (body) body.attachSide(creq);
  else creq.end();
}

// RequestRedirect: answers with a redirect instead of forwarding. Unset parts
// keep the request's (scheme, host, path); the port is dropped when it is the
// scheme's default.
import type { RouteFilter } from "../../core/model/waypoint.js";
import { rewritePath } from "./url-rewrite.js";

type Redirect = Extract<RouteFilter, { type: "RequestRedirect" }>;

export function redirectLocation(
  f: Redirect,
  req: { scheme: string; authority: string; url: string },
  prefix: string | undefined,
): string {
  const scheme = f.scheme ?? req.scheme;
  const auth = req.authority;
  let host = auth;
  let port: number | undefined;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(auth);
  if (m) {
    host = m[1]!;
    port = m[2] ? Number(m[2]) : undefined;
  }
  if (f.hostname) host = f.hostname;
  if (f.port !== undefined) port = f.port;
  else if (f.scheme) port = undefined; // a scheme change without a port uses the scheme's default
  const dflt = scheme === "https" ? 443 : 80;
  const hostPort = port === undefined || port === dflt ? host : `${host}:${port}`;
  const q = req.url.indexOf("?");
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const newPath = f.path ? rewritePath(path, f.path, prefix) : path;
  return `${scheme}://${hostPort}${newPath}${q < 0 ? "" : req.url.slice(q)}`;
}

// CORS: answers preflights itself and adds the allow headers to responses
// of allowed origins. Origins may be `*` or hosts with a leading wildcard.
import type { CorsPolicy } from "../../core/model/waypoint.js";

export function originAllowed(p: CorsPolicy, origin: string): boolean {
  for (const o of p.allowOrigins) {
    if (o === "*" || o === origin) return true;
    const star = o.indexOf("*");
    if (
      star >= 0 &&
      origin.startsWith(o.slice(0, star)) &&
      origin.endsWith(o.slice(star + 1)) &&
      origin.length >= o.length
    )
      return true;
  }
  return false;
}

/** Headers for an actual (non-preflight) response from an allowed origin. */
export function corsResponseHeaders(p: CorsPolicy, origin: string): Record<string, string> {
  const h: Record<string, string> = {
    "access-control-allow-origin": p.allowOrigins.includes("*") && !p.allowCredentials ? "*" : origin,
  };
  if (p.allowCredentials) h["access-control-allow-credentials"] = "true";
  if (p.exposeHeaders.length) h["access-control-expose-headers"] = p.exposeHeaders.join(", ");
  if (h["access-control-allow-origin"] !== "*") h.vary = "Origin";
  return h;
}

export function isPreflight(method: string, headers: Record<string, unknown>): boolean {
  return (
    method === "OPTIONS" &&
    headers.origin !== undefined &&
    headers["access-control-request-method"] !== undefined
  );
}

/** The preflight answer: 204 with allow headers, or undefined when the origin is not allowed (forwarded as is). */
export function corsPreflight(
  p: CorsPolicy,
  headers: Record<string, unknown>,
): Record<string, string> | undefined {
  const origin = String(headers.origin);
  if (!originAllowed(p, origin)) return undefined;
  const h = corsResponseHeaders(p, origin);
  const reqMethod = String(headers["access-control-request-method"]);
  h["access-control-allow-methods"] = p.allowMethods.includes("*") ? reqMethod : p.allowMethods.join(", ");
  const reqHeaders = headers["access-control-request-headers"];
  if (p.allowHeaders.includes("*") && reqHeaders) h["access-control-allow-headers"] = String(reqHeaders);
  else if (p.allowHeaders.length) h["access-control-allow-headers"] = p.allowHeaders.join(", ");
  if (p.maxAgeSeconds !== undefined) h["access-control-max-age"] = String(p.maxAgeSeconds);
  return h;
}

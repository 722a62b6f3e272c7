// RequestAuthentication: validates JWTs with jose against the rules of the
// destination service. A request without a token passes unauthenticated
// (authorization decides whether that is enough); a request with a token
// that fails validation is refused (401). JWKS: inline, a file, or a URL
// (fetched and cached by jose's remote key set).
import { readFile } from "node:fs/promises";
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, type JWTPayload, jwtVerify } from "jose";
import type { JwtRule } from "../../core/model/waypoint.js";

type KeySet = ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;

export interface AuthResult {
  /** `iss/sub` */
  principal: string;
  claims: JWTPayload;
}

export type AuthOutcome =
  | { kind: "none" }
  | { kind: "ok"; auth: AuthResult }
  | { kind: "invalid"; reason: string };

interface CompiledRule {
  rule: JwtRule;
  keys: () => Promise<KeySet>;
}

function keySetFor(rule: JwtRule): () => Promise<KeySet> {
  if (rule.jwks) {
    const ks = createLocalJWKSet(JSON.parse(rule.jwks));
    return async () => ks;
  }
  const uri = rule.jwksUri ?? "";
  if (uri.startsWith("file://") || uri.startsWith("/")) {
    const path = uri.startsWith("file://") ? new URL(uri).pathname : uri;
    let cached: Promise<KeySet> | undefined;
    return () => {
      cached ??= readFile(path, "utf8").then((t) => createLocalJWKSet(JSON.parse(t)));
      cached.catch(() => {
        cached = undefined;
      });
      return cached;
    };
  }
  const remote = createRemoteJWKSet(new URL(uri), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000 });
  return async () => remote;
}

export class JwtAuthenticator {
  private readonly rules: CompiledRule[];
  constructor(rules: JwtRule[]) {
    this.rules = rules.map((rule) => ({ rule, keys: keySetFor(rule) }));
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  private extract(
    headers: Record<string, string | string[] | undefined>,
    url: string,
  ): { token: string; header?: string } | undefined {
    for (const { rule } of this.rules) {
      const from = rule.fromHeaders?.length
        ? rule.fromHeaders
        : [{ name: "authorization", prefix: "Bearer " }];
      for (const h of from) {
        const v = headers[h.name.toLowerCase()];
        const s = Array.isArray(v) ? v[0] : v;
        if (!s) continue;
        const p = h.prefix ?? "";
        if (s.length > p.length && s.slice(0, p.length).toLowerCase() === p.toLowerCase())
          return { token: s.slice(p.length).trim(), header: h.name.toLowerCase() };
      }
      if (rule.fromParams?.length) {
        const q = url.indexOf("?");
        if (q >= 0) {
          const params = new URLSearchParams(url.slice(q + 1));
          for (const name of rule.fromParams) {
            const t = params.get(name);
            if (t) return { token: t };
          }
        }
      }
    }
    return undefined;
  }

  /** Validates the request's token; on success strips it (unless forwardOriginalToken) and sets claim headers. */
  async authenticate(
    headers: Record<string, string | string[] | undefined>,
    url: string,
  ): Promise<AuthOutcome> {
    const found = this.extract(headers, url);
    if (!found) return { kind: "none" };
    let iss: string | undefined;
    try {
      iss = decodeJwt(found.token).iss;
    } catch {
      return { kind: "invalid", reason: "malformed token" };
    }
    const c = this.rules.find((r) => r.rule.issuer === iss);
    if (!c) return { kind: "invalid", reason: "issuer not configured" };
    try {
      const { payload } = await jwtVerify(found.token, await c.keys(), {
        issuer: c.rule.issuer,
        ...(c.rule.audiences.length ? { audience: c.rule.audiences } : {}),
      });
      if (!c.rule.forwardOriginalToken && found.header) delete headers[found.header];
      for (const o of c.rule.outputClaimToHeaders ?? []) {
        const v = payload[o.claim];
        if (v !== undefined) headers[o.header.toLowerCase()] = typeof v === "string" ? v : JSON.stringify(v);
      }
      return { kind: "ok", auth: { principal: `${payload.iss}/${payload.sub}`, claims: payload } };
    } catch (e) {
      return { kind: "invalid", reason: (e as Error).message };
    }
  }
}

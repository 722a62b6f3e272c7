// Who is calling the CA. The answer is a node name: a ztunnel may only get
// certificates for pods on its own node (authz.ts decides that). Istio's
// ztunnel sends `authorization: Bearer <token>`; locally `ambit up` writes a
// token per node into tokens.json. On a cluster a TokenReview authenticator
// (the ztunnel's service-account token, node from the bound pod) implements
// the same interface.

import type { X509Certificate } from "node:crypto";
import { createHash, randomBytes } from "node:crypto";
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import type { PeerCertificate } from "node:tls";
import type * as grpc from "@grpc/grpc-js";
import { AmbitError } from "../../core/errors/errors.js";

export interface CallerPeer {
  /** The client certificate of a TLS caller (15012), when it presented one. */
  certificate?: PeerCertificate | X509Certificate;
}

export interface Caller {
  node: string;
  /** How the caller proved it: for logs and the refusal counter. */
  via: string;
  /**
   * Set when the caller is a workload asking for itself (a waypoint pod with
   * its own service-account token), not a node agent: it may only get a
   * certificate for exactly this identity.
   */
  self?: { namespace: string; serviceAccount: string };
}

export interface CallerAuthenticator {
  /** The caller's node, or null when the credentials are missing or wrong. */
  authenticate(metadata: grpc.Metadata, peer?: CallerPeer): Promise<Caller | null>;
}

/** The token of `authorization: Bearer <token>` (case-insensitive scheme), if any. */
export function bearerToken(metadata: grpc.Metadata): string | undefined {
  for (const v of metadata.get("authorization")) {
    const s = typeof v === "string" ? v : v.toString("utf8");
    const m = /^Bearer\s+(\S+)\s*$/i.exec(s);
    if (m) return m[1];
  }
  return undefined;
}

// Tokens are kept as hashes: a lookup by hash leaks nothing about the tokens through timing.
function digest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Bearer tokens given in memory (token → node). */
export class StaticTokenAuthenticator implements CallerAuthenticator {
  private byDigest = new Map<string, string>();
  constructor(tokens: Record<string, string> = {}) {
    this.set(tokens);
  }
  set(tokens: Record<string, string>): void {
    const m = new Map<string, string>();
    for (const [token, node] of Object.entries(tokens)) m.set(digest(token), node);
    this.byDigest = m;
  }
  async authenticate(metadata: grpc.Metadata): Promise<Caller | null> {
    const token = bearerToken(metadata);
    if (!token) return null;
    const node = this.byDigest.get(digest(token));
    return node ? { node, via: "token" } : null;
  }
}

/** Checks the shape of tokens.json: an object of token → node name. */
export function parseTokenFile(text: string, file: string): Record<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new AmbitError("CONFIG", `${file}: not JSON (${(e as Error).message})`, { file });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new AmbitError("CONFIG", `${file}: want an object of token to node name`, { file });
  }
  const out: Record<string, string> = {};
  for (const [token, node] of Object.entries(data)) {
    if (typeof node !== "string" || node === "") {
      throw new AmbitError(
        "CONFIG",
        `${file}: field ${JSON.stringify(`${token.slice(0, 4)}...`)}: node name must be a non-empty string`,
        { file },
      );
    }
    if (token.length < 16)
      throw new AmbitError("CONFIG", `${file}: the token of node ${node} is shorter than 16 characters`, {
        file,
      });
    out[token] = node;
  }
  return out;
}

/**
 * tokens.json (token → node) as written by `ambit up`. Re-read when the file
 * changes, so nodes added while the controller runs are accepted; a file that
 * turns bad keeps the last good tokens.
 */
export class TokenFileAuthenticator implements CallerAuthenticator {
  private readonly tokens = new StaticTokenAuthenticator();
  private seen = "";
  private loading: Promise<void> | undefined;
  lastError: AmbitError | undefined;

  constructor(readonly path: string) {}

  private async refresh(): Promise<void> {
    let key: string;
    try {
      const st = await stat(this.path);
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      key = "missing";
    }
    if (key === this.seen) return;
    this.seen = key;
    if (key === "missing") {
      this.tokens.set({});
      return;
    }
    try {
      this.tokens.set(parseTokenFile(await readFile(this.path, "utf8"), this.path));
      this.lastError = undefined;
    } catch (e) {
      this.lastError =
        e instanceof AmbitError ? e : new AmbitError("CONFIG", `${this.path}: ${(e as Error).message}`);
    }
  }

  async authenticate(metadata: grpc.Metadata): Promise<Caller | null> {
    // One refresh at a time; concurrent calls share it.
    this.loading ??= this.refresh().finally(() => {
      this.loading = undefined;
    });
    await this.loading;
    return this.tokens.authenticate(metadata);
  }
}

/** Tries each authenticator in turn (e.g. certificate first, then bootstrap token). */
export class FirstOfAuthenticator implements CallerAuthenticator {
  constructor(private readonly authenticators: CallerAuthenticator[]) {}
  async authenticate(metadata: grpc.Metadata, peer?: CallerPeer): Promise<Caller | null> {
    for (const a of this.authenticators) {
      const c = await a.authenticate(metadata, peer);
      if (c) return c;
    }
    return null;
  }
}

/** A fresh node token: 256 random bits, URL-safe. */
export function newNodeToken(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * Writes tokens.json (token → node) for `ambit up`: owner-only, replaced
 * atomically so the CA never reads half a file.
 */
export async function writeTokenFile(path: string, tokens: Record<string, string>): Promise<void> {
  parseTokenFile(JSON.stringify(tokens), path); // the same checks as the reader
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

// Helpers of the L7 mesh test: the fixture directory (test/fixtures/l7-mesh,
// top-level YAML only: edits/ is written in while the mesh runs), the JWT
// policy made per run, a keep-alive load run inside a pod, Prometheus text
// read from inside the waypoint's pod, and a binomial bound.
import fs from "node:fs";
import path from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { ambit } from "./mesh-fixture.js";

export const FIXTURE_DIR = path.join(process.cwd(), "test/fixtures/l7-mesh");
export const LOAD_SCRIPT = "test/fixtures/l7-mesh/bin/load.mjs";
export const ISSUER = "https://issuer.l7-mesh.test";

/** Copies the fixture's top-level YAML into dir (what `ambit up` reads). */
export function copyFixture(dir: string): void {
  for (const f of fs.readdirSync(FIXTURE_DIR))
    if (f.endsWith(".yaml")) fs.copyFileSync(path.join(FIXTURE_DIR, f), path.join(dir, f));
}

export interface Jwt {
  /** RequestAuthentication (inline JWKS) + an ALLOW policy that needs a request principal, on Service secure. */
  yaml: string;
  valid: string;
  /** Right issuer and claims, signed by a key the JWKS does not have. */
  forged: string;
}

export async function makeJwt(): Promise<Jwt> {
  const key = await generateKeyPair("ES256");
  const other = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(key.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const sign = (k: Parameters<SignJWT["sign"]>[0]) =>
    new SignJWT({ scope: "read" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(ISSUER)
      .setSubject("alice")
      .setAudience("secure")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(k);
  const yaml = `apiVersion: ambit.dev/v1alpha1
kind: RequestAuthentication
metadata: { name: secure-jwt, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: secure }]
  jwtRules:
    - issuer: ${ISSUER}
      audiences: [secure]
      jwks: ${JSON.stringify(JSON.stringify({ keys: [jwk] }))}
---
apiVersion: ambit.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: secure-needs-jwt, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: secure }]
  action: ALLOW
  rules:
    - from: [{ source: { requestPrincipals: ["${ISSUER}/*"] } }]
`;
  return { yaml, valid: await sign(key.privateKey), forged: await sign(other.privateKey) };
}

export interface LoadSpec {
  /** Names the result (the test looks results up by it). */
  name?: string;
  url: string;
  n?: number;
  concurrency?: number;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Repeat one request until this status and/or body text (or untilMs), instead of n requests. */
  until?: number;
  untilIncludes?: string;
  untilMs?: number;
  /** Keep the last body as text (e.g. Prometheus metrics). */
  text?: boolean;
}

export interface LoadResult {
  name?: string;
  url: string;
  n: number;
  statuses: Record<string, number>;
  versions: Record<string, number>;
  errors: Record<string, number>;
  maxMs: number;
  last?: { status: number; json?: Record<string, unknown>; body?: string; headers?: Record<string, string> };
}

/** Runs load.mjs inside the pod: one process for all specs, keep-alive connections per spec. */
export async function load(
  runDir: string,
  meshId: string,
  pod: string,
  specs: LoadSpec[],
): Promise<LoadResult[]> {
  const r = await ambit(runDir, [
    "exec",
    "--mesh-id",
    meshId,
    pod,
    "--",
    "node",
    LOAD_SCRIPT,
    JSON.stringify(specs),
  ]);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as LoadResult[];
  } catch {
    throw new Error(`load in ${pod} failed (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

/** Results by spec name; a missing one throws (naming what came back). */
export function byName(results: LoadResult[]): (name: string) => LoadResult {
  const m = new Map(results.map((r) => [r.name ?? r.url, r]));
  return (name) => {
    const r = m.get(name);
    if (!r) throw new Error(`no result '${name}' (have ${[...m.keys()].join(", ")})`);
    return r;
  };
}

/** The body of a spec run with `text: true`. */
export function textOf(r: LoadResult): string {
  return r.last?.body ?? "";
}

/** Sum of a Prometheus counter's samples whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const brace = line.indexOf("}");
    const labelText = brace > 0 ? line.slice(name.length + 1, brace) : "";
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`)))
      sum += Number(
        line
          .slice((brace > 0 ? brace : name.length) + 1)
          .trim()
          .split(" ")[0],
      );
  }
  return sum;
}

/** [lo, hi] that a Binomial(n, p) count falls outside of with probability < ~1e-6 (k sigma). */
export function binomialBounds(n: number, p: number, k = 5): [number, number] {
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  return [Math.floor(mean - k * sd), Math.ceil(mean + k * sd)];
}

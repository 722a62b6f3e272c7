// CA caller authentication on a cluster: a ztunnel sends its projected
// service-account token (`authorization: Bearer <token>`, as Istio's ztunnel
// does); the API server checks it (TokenReview), and the token's pod binding
// says which pod sent it and so which node it runs on. Tokens of the ztunnel
// service account(s) may ask for any identity running on their node; any other
// pod-bound token (a waypoint's) only for its own service account, as Istio's
// CA does for sidecars and waypoints: otherwise any pod's token would get
// certificates for every pod on its node.
import { createHash } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import { bearerToken, type Caller, type CallerAuthenticator } from "../../ca/authn.js";
import type { Pod } from "../objects.js";
import { isNotFound, type KubeClient } from "./client.js";

export interface TokenReviewAuthenticatorOptions {
  client: KubeClient;
  /** `namespace/name` of the node agents' service accounts (e.g. ambit-system/ambit-ztunnel): their tokens may ask for any identity on their node; other pod-bound tokens only for their own. */
  allowedServiceAccounts: string[];
  /** Audiences the token must carry one of (default ambit-ca and istio-ca, what Istio's ztunnel asks for). */
  audiences?: string[];
  /** How long a positive answer is reused (ms, default 60 s; never past the token's pod). */
  cacheMs?: number;
  logger?: Logger;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

const SA_PREFIX = "system:serviceaccount:";
const EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name";
const EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid";
const EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name";

/** The caller a successful TokenReview names, or why not (pure). */
export function callerFromReview(
  status: TokenReviewStatus,
  allowed: ReadonlySet<string>,
):
  | {
      ok: true;
      serviceAccount: string;
      pod?: { namespace: string; name: string; uid?: string };
      node?: string;
      /** Not a node agent: only its own identity may be asked for. */
      selfOnly: boolean;
    }
  | { ok: false; reason: string } {
  if (!status.authenticated) return { ok: false, reason: status.error || "token not authenticated" };
  const user = status.user?.username ?? "";
  if (!user.startsWith(SA_PREFIX))
    return { ok: false, reason: `${user || "(no user)"} is not a service account` };
  const [namespace, name] = user.slice(SA_PREFIX.length).split(":");
  const sa = `${namespace}/${name}`;
  const extra = status.user?.extra ?? {};
  const podName = extra[EXTRA_POD_NAME]?.[0];
  const node = extra[EXTRA_NODE_NAME]?.[0];
  if (!podName)
    return { ok: false, reason: "token is not bound to a pod (use a projected service-account token)" };
  return {
    ok: true,
    serviceAccount: sa,
    pod: { namespace, name: podName, uid: extra[EXTRA_POD_UID]?.[0] },
    node,
    selfOnly: !allowed.has(sa),
  };
}

export class TokenReviewAuthenticator implements CallerAuthenticator {
  private readonly client: KubeClient;
  private readonly allowed: ReadonlySet<string>;
  private readonly audiences: string[];
  private readonly cacheMs: number;
  private readonly log: Logger;
  private readonly cache = new Map<string, { caller: Caller; until: number }>();

  constructor(opts: TokenReviewAuthenticatorOptions) {
    this.client = opts.client;
    this.allowed = new Set(opts.allowedServiceAccounts);
    this.audiences = opts.audiences ?? ["ambit-ca", "istio-ca"];
    this.cacheMs = opts.cacheMs ?? 60_000;
    this.log = opts.logger ?? makeLogger("controller.ca.tokenreview");
  }

  async authenticate(metadata: grpc.Metadata): Promise<Caller | null> {
    const token = bearerToken(metadata);
    if (!token) return null;
    return this.authenticateToken(token);
  }

  /** The node of the pod the token is bound to, or null. */
  async authenticateToken(token: string): Promise<Caller | null> {
    const key = createHash("sha256").update(token).digest("hex");
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.caller;
    if (hit) this.cache.delete(key);

    const review = await this.client.request<{ status?: TokenReviewStatus }>({
      method: "POST",
      path: "/apis/authentication.k8s.io/v1/tokenreviews",
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, audiences: this.audiences },
      },
    });
    const who = callerFromReview(review.status ?? {}, this.allowed);
    if (!who.ok) {
      this.log.info({ reason: who.reason }, "CA caller refused");
      return null;
    }
    // The pod binding is authoritative; the node-name extra (Kubernetes ≥1.30)
    // saves a lookup, but the pod must still exist with the bound uid.
    let node = who.node;
    if (who.pod) {
      let pod: Pod;
      try {
        pod = await this.client.get<Pod>(`/api/v1/namespaces/${who.pod.namespace}/pods/${who.pod.name}`);
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
      if (who.pod.uid && pod.metadata.uid !== who.pod.uid) return null;
      if (node && pod.spec.nodeName && node !== pod.spec.nodeName) return null;
      node = pod.spec.nodeName ?? node;
    }
    if (!node) return null;
    const caller: Caller = {
      node,
      via: `tokenreview:${who.serviceAccount}`,
      ...(who.selfOnly && who.pod
        ? { self: { namespace: who.pod.namespace, serviceAccount: who.serviceAccount.split("/")[1] ?? "" } }
        : {}),
    };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { caller, until: now + this.cacheMs });
    return caller;
  }
}

// A thin JSON client for the Kubernetes API on top of @kubernetes/client-node's
// KubeConfig (which knows kubeconfig files, in-cluster service-account tokens
// and their rotation). The generated typed APIs deserialize into classes
// (timestamps become Date objects) while watches deliver plain JSON; ambit
// wants one shape, the plain JSON the API and the YAML files use, so every
// request here returns parsed JSON as the server sent it.

import { request as httpRequest } from "node:http";
import type { Agent, RequestOptions } from "node:https";
import { request } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { AmbitError } from "../../../core/errors/errors.js";

export interface KubeConfigSource {
  /** A kubeconfig file; without it: in-cluster config, else $KUBECONFIG / ~/.kube/config. */
  kubeconfigPath?: string;
  /** Use this context instead of the file's current-context. */
  context?: string;
}

export function loadKubeConfig(src: KubeConfigSource = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (src.kubeconfigPath) kc.loadFromFile(src.kubeconfigPath);
    else kc.loadFromDefault();
    if (src.context) kc.setCurrentContext(src.context);
  } catch (e) {
    throw new AmbitError(
      "CONFIG",
      `kubeconfig ${src.kubeconfigPath ?? "(default)"}: ${(e as Error).message}`,
    );
  }
  if (!kc.getCurrentCluster())
    throw new AmbitError("CONFIG", `kubeconfig ${src.kubeconfigPath ?? "(default)"}: no current cluster`);
  return kc;
}

/** A non-2xx answer of the API server; `status` is its Status object when it sent one. */
export class KubeApiError extends AmbitError {
  constructor(
    readonly statusCode: number,
    readonly method: string,
    readonly path: string,
    readonly status: { reason?: string; message?: string; details?: unknown } | undefined,
  ) {
    super(
      "KUBE_API",
      `${method} ${path}: ${statusCode} ${status?.reason ?? ""} ${status?.message ?? ""}`.trim(),
      {
        statusCode,
        reason: status?.reason,
      },
    );
    this.name = "KubeApiError";
  }
}

export interface KubeRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute API path, e.g. /api/v1/pods. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Default application/json; server-side apply uses application/apply-patch+yaml. */
  contentType?: string;
  timeoutMs?: number;
}

export class KubeClient {
  private agent: Agent | undefined;
  readonly server: string;

  constructor(readonly config: KubeConfig) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new AmbitError("CONFIG", "kubeconfig: no current cluster");
    this.server = cluster.server;
  }

  static fromSource(src: KubeConfigSource = {}): KubeClient {
    return new KubeClient(loadKubeConfig(src));
  }

  /** Sends one request and parses the JSON answer; rejects with KubeApiError on non-2xx. */
  async request<T = unknown>(r: KubeRequest): Promise<T> {
    const method = r.method ?? "GET";
    const url = new URL(this.server.replace(/\/$/, "") + r.path);
    for (const [k, v] of Object.entries(r.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = { method, headers: { accept: "application/json" } };
    // Credentials are applied per request: in-cluster tokens rotate. The TLS
    // agent (CA, client certificate) does not change, so one is kept for reuse.
    await this.config.applyToHTTPSOptions(opts);
    if (this.agent) opts.agent = this.agent;
    else if (opts.agent) this.agent = opts.agent as Agent;
    const body =
      r.body === undefined ? undefined : typeof r.body === "string" ? r.body : JSON.stringify(r.body);
    if (body !== undefined) {
      opts.headers = {
        ...opts.headers,
        "content-type": r.contentType ?? "application/json",
        "content-length": Buffer.byteLength(body),
      };
    }
    const send = url.protocol === "http:" ? httpRequest : request;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed as T);
          else
            reject(
              new KubeApiError(
                code,
                method,
                r.path,
                (parsed as { reason?: string; message?: string }) ?? { message: text.slice(0, 200) },
              ),
            );
        });
      });
      req.setTimeout(r.timeoutMs ?? 30_000, () =>
        req.destroy(new AmbitError("KUBE_API", `${method} ${r.path}: timed out`)),
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  get<T = unknown>(path: string, query?: KubeRequest["query"]): Promise<T> {
    return this.request<T>({ path, query });
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof KubeApiError && e.statusCode === 404;
}

export function isConflict(e: unknown): boolean {
  return e instanceof KubeApiError && e.statusCode === 409;
}

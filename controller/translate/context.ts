// What every translation step shares: options, lookups over the snapshot,
// and error/warning collection that names the object, its file and the field.
import { type ErrorCode, ObjectError } from "../../core/errors/errors.js";
import {
  type ClusterSnapshot,
  type Gateway,
  type KubeObject,
  type Namespace,
  objectRef,
} from "../provider/objects.js";

export interface TranslateOptions {
  trustDomain: string;
  clusterId: string;
  network: string;
  clusterDomain: string;
  rootNamespace: string;
}

export const DEFAULT_TRANSLATE_OPTIONS: TranslateOptions = {
  trustDomain: "cluster.local",
  clusterId: "Kubernetes",
  network: "",
  clusterDomain: "cluster.local",
  rootNamespace: "ambit-system",
};

export class TranslateContext {
  readonly errors: ObjectError[] = [];
  readonly warnings: ObjectError[] = [];
  readonly namespaces: Map<string, Namespace>;
  readonly gateways: Map<string, Gateway>;
  private readonly reported = new Set<string>();

  constructor(
    readonly snapshot: ClusterSnapshot,
    readonly opts: TranslateOptions,
  ) {
    this.namespaces = new Map(snapshot.namespaces.map((n) => [n.metadata.name, n]));
    this.gateways = new Map(snapshot.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));
  }

  private make(code: ErrorCode, o: KubeObject, field: string | undefined, reason: string): ObjectError {
    const file = this.snapshot.sources?.[objectRef(o)];
    return new ObjectError(
      code,
      { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, file },
      field,
      reason,
    );
  }

  /** An error: the object (or the part named) is not translated. Reported once per distinct message. */
  error(code: ErrorCode, o: KubeObject, field: string | undefined, reason: string): void {
    const e = this.make(code, o, field, reason);
    if (this.reported.has(e.message)) return;
    this.reported.add(e.message);
    this.errors.push(e);
  }

  /** A warning: translated, but not exactly as written (e.g. HTTP rules ztunnel cannot enforce). */
  warn(code: ErrorCode, o: KubeObject, field: string | undefined, reason: string): void {
    const e = this.make(code, o, field, reason);
    if (this.reported.has(e.message)) return;
    this.reported.add(e.message);
    this.warnings.push(e);
  }

  serviceHostname(name: string, namespace: string): string {
    return `${name}.${namespace}.svc.${this.opts.clusterDomain}`;
  }

  namespaceLabels(ns: string | undefined): Record<string, string> {
    return this.namespaces.get(ns ?? "default")?.metadata.labels ?? {};
  }
}

/** Kubernetes equality-based label selection; an empty selector selects everything. */
export function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}

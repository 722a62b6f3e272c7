// Writes status conditions computed by the translator (status as data) to the
// cluster with server-side apply on the status subresource. ambit owns only
// the fields it sends (field manager "ambit-controller"); everything else in
// status stays with its owners.
//
// planStatus is pure: it fills observedGeneration and lastTransitionTime
// (kept from the current condition when its status did not change, as
// metav1.Condition requires) and says whether anything would change, so a
// status write that echoes back through the informers does not loop.
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import type { Condition, KubeObject } from "../objects.js";
import { isNotFound, type KubeClient } from "./client.js";
import { AMBIT_GROUP, apiVersionOf, objectPath, resourceByKind } from "./resources.js";

export interface StatusUpdate {
  kind: string;
  namespace?: string;
  name: string;
  /** The status fields ambit owns; every `conditions` array (at any depth) is completed by planStatus. */
  status: Record<string, unknown>;
  /** The generation this status describes; default: the current object's metadata.generation. */
  observedGeneration?: number;
}

export interface StatusPlan {
  path: string;
  /** The apply patch (JSON is YAML). */
  body: {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
    status: Record<string, unknown>;
  };
  changed: boolean;
}

/**
 * Whether `current` already says everything `desired` says. Conditions are
 * matched by type, so conditions other writers own do not count as a change.
 */
function covers(desired: unknown, current: unknown, key?: string): boolean {
  if (Array.isArray(desired)) {
    if (!Array.isArray(current)) return false;
    if (key === "conditions") {
      return (desired as Condition[]).every((d) =>
        covers(
          d,
          (current as Condition[]).find((c) => c?.type === d.type),
        ),
      );
    }
    return desired.length === current.length && desired.every((d, i) => covers(d, current[i]));
  }
  if (desired && typeof desired === "object") {
    if (!current || typeof current !== "object") return false;
    return Object.entries(desired).every(
      ([k, v]) => v === undefined || covers(v, (current as Record<string, unknown>)[k], k),
    );
  }
  return desired === current;
}

/** Completes conditions arrays (at any depth), taking lastTransitionTime from the current status at the same place. */
function complete(
  desired: unknown,
  current: unknown,
  generation: number | undefined,
  now: string,
  key?: string,
): unknown {
  if (Array.isArray(desired)) {
    if (key === "conditions") {
      const cur = Array.isArray(current) ? (current as Condition[]) : [];
      return (desired as Condition[]).map((c) => {
        const before = cur.find((x) => x.type === c.type);
        return {
          ...c,
          reason: c.reason ?? c.type,
          message: c.message ?? "",
          ...(generation !== undefined ? { observedGeneration: c.observedGeneration ?? generation } : {}),
          lastTransitionTime:
            c.lastTransitionTime ??
            (before && before.status === c.status && before.lastTransitionTime
              ? before.lastTransitionTime
              : now),
        };
      });
    }
    const cur = Array.isArray(current) ? current : [];
    if (key === "parents") {
      // Route status.parents is an atomic list shared by every controller
      // whose Gateways the route names: keep the other controllers' entries.
      type ParentStatus = { controllerName?: string; parentRef?: unknown };
      const ours = new Set((desired as ParentStatus[]).map((d) => d.controllerName));
      const mine = (desired as ParentStatus[]).map((d) =>
        complete(
          d,
          (cur as ParentStatus[]).find(
            (c) =>
              c.controllerName === d.controllerName &&
              covers(d.parentRef, c.parentRef) &&
              covers(c.parentRef, d.parentRef),
          ),
          generation,
          now,
        ),
      );
      return [...(cur as ParentStatus[]).filter((c) => !ours.has(c.controllerName)), ...mine];
    }
    // Other lists of structs (Gateway listeners): match the current entry at the same index.
    return desired.map((d, i) => complete(d, cur[i], generation, now));
  }
  if (desired && typeof desired === "object") {
    const cur = current && typeof current === "object" ? (current as Record<string, unknown>) : {};
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(desired)) out[k] = complete(v, cur[k], generation, now, k);
    return out;
  }
  return desired;
}

/** What to apply for `update` given the object as it is now (undefined: unknown or gone). Pure. */
export function planStatus(
  update: StatusUpdate,
  current: KubeObject | undefined,
  now: Date = new Date(),
): StatusPlan {
  const r = resourceByKind(update.kind);
  if (!r) throw new Error(`status: kind ${update.kind} is not a watched resource`);
  const generation = update.observedGeneration ?? current?.metadata.generation;
  const curStatus = ((current as { status?: Record<string, unknown> } | undefined)?.status ?? {}) as Record<
    string,
    unknown
  >;
  // metav1.Time has second precision: a sub-second time would never compare equal after a round trip.
  const nowText = `${now.toISOString().slice(0, 19)}Z`;
  const status = complete(update.status, curStatus, generation, nowText) as Record<string, unknown>;
  // Istio-shaped ambit.dev statuses carry observedGeneration at the top too;
  // Gateway API statuses have no such field (their conditions carry it).
  if (r.group === AMBIT_GROUP && generation !== undefined && status.observedGeneration === undefined)
    status.observedGeneration = generation;
  const changed = !covers(status, curStatus);
  const metadata: { name: string; namespace?: string } = { name: update.name };
  if (r.namespaced) metadata.namespace = update.namespace ?? "default";
  return {
    path: `${objectPath(r, update.name, update.namespace)}/status`,
    body: { apiVersion: apiVersionOf(r), kind: r.kind, metadata, status },
    changed,
  };
}

export interface StatusWriterOptions {
  client: KubeClient;
  /** Field manager of the applies (default ambit-controller). */
  fieldManager?: string;
  /** The current object (the informer cache); without it, each write GETs it first. */
  lookup?: (kind: string, namespace: string | undefined, name: string) => KubeObject | undefined;
  /** Writes are skipped (result "not-leader") while this says false. */
  isLeader?: () => boolean;
  logger?: Logger;
}

export type StatusResult = "written" | "unchanged" | "missing" | "not-leader";

export class StatusWriter {
  private readonly client: KubeClient;
  private readonly fieldManager: string;
  private readonly log: Logger;

  constructor(private readonly opts: StatusWriterOptions) {
    this.client = opts.client;
    this.fieldManager = opts.fieldManager ?? "ambit-controller";
    this.log = opts.logger ?? makeLogger("controller.status");
  }

  private async current(u: StatusUpdate): Promise<KubeObject | undefined> {
    if (this.opts.lookup) return this.opts.lookup(u.kind, u.namespace, u.name);
    const r = resourceByKind(u.kind);
    if (!r) return undefined;
    try {
      return await this.client.get<KubeObject>(objectPath(r, u.name, u.namespace));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async apply(u: StatusUpdate): Promise<StatusResult> {
    if (this.opts.isLeader && !this.opts.isLeader()) return "not-leader";
    const cur = await this.current(u);
    if (!cur) return "missing";
    const plan = planStatus(u, cur);
    if (!plan.changed) return "unchanged";
    try {
      await this.client.request({
        method: "PATCH",
        path: plan.path,
        query: { fieldManager: this.fieldManager, force: true },
        contentType: "application/apply-patch+yaml",
        body: plan.body,
      });
      return "written";
    } catch (e) {
      if (isNotFound(e)) return "missing";
      throw e;
    }
  }

  /** Applies each update; one failure does not stop the others. Returns the results by `Kind ns/name`. */
  async applyAll(updates: StatusUpdate[]): Promise<Map<string, StatusResult | Error>> {
    const out = new Map<string, StatusResult | Error>();
    for (const u of updates) {
      const ref = `${u.kind} ${u.namespace ? `${u.namespace}/` : ""}${u.name}`;
      try {
        out.set(ref, await this.apply(u));
      } catch (e) {
        this.log.warn({ object: ref, err: (e as Error).message }, "status write failed");
        out.set(ref, e as Error);
      }
    }
    return out;
  }
}

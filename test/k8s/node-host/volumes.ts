// A pod's volumes, made as kubelet makes them, in the pod's directory:
// emptyDir, hostPath (through the node's view), configMap, secret,
// downwardAPI and projected (serviceAccountToken by the TokenRequest API,
// bound to the pod; configMap; secret; downwardAPI). The result is the list
// of bind mounts for each container (its volumeMounts).
import fs from "node:fs";
import path from "node:path";
import type { Bind, NodeView } from "./node-view.js";

export interface KeyToPath {
  key: string;
  path: string;
}

export interface DownwardItem {
  path: string;
  fieldRef?: { fieldPath: string };
}

export interface ProjectionSource {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items?: DownwardItem[] };
}

export interface Volume {
  name: string;
  emptyDir?: Record<string, unknown>;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  secret?: { secretName: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items?: DownwardItem[] };
  projected?: { sources: ProjectionSource[] };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

/** What volumes need from the API server. */
export interface VolumeApi {
  configMap(ns: string, name: string): Promise<Record<string, string> | undefined>;
  secret(ns: string, name: string): Promise<Record<string, string> | undefined>;
  /** A service-account token bound to the pod (TokenRequest), as kubelet projects it. */
  token(
    ns: string,
    sa: string,
    audience: string | undefined,
    expirationSeconds: number,
    pod: { name: string; uid: string },
  ): Promise<string>;
}

/** A volume that cannot be made yet (a ConfigMap that does not exist yet): kubelet retries. */
export class VolumeNotReady extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VolumeNotReady";
  }
}

function writeKeys(
  dir: string,
  data: Record<string, string> | undefined,
  items: KeyToPath[] | undefined,
  what: string,
  optional: boolean | undefined,
): void {
  if (!data) {
    if (optional) return;
    throw new VolumeNotReady(`${what} not found`);
  }
  const pairs = items ? items.map((i) => [i.path, data[i.key]] as const) : Object.entries(data);
  for (const [p, v] of pairs) {
    if (v === undefined) {
      if (optional) continue;
      throw new VolumeNotReady(`${what}: key for ${p} missing`);
    }
    const file = path.join(dir, p);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, v);
  }
}

/**
 * Makes every volume under `dir` (once per pod) and resolves the directory
 * (or file) that stands for each.
 */
export async function makeVolumes(
  volumes: Volume[],
  dir: string,
  pod: {
    namespace: string;
    name: string;
    uid: string;
    serviceAccount: string;
    fields: Record<string, string>;
  },
  api: VolumeApi,
  view: NodeView,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const v of volumes) {
    if (v.hostPath) {
      const p = view.hostPath(v.hostPath.path);
      if (v.hostPath.type !== "File" && v.hostPath.type !== "FileOrCreate")
        fs.mkdirSync(p, { recursive: true });
      out.set(v.name, p);
      continue;
    }
    const vdir = path.join(dir, "volumes", v.name);
    fs.mkdirSync(vdir, { recursive: true });
    out.set(v.name, vdir);
    if (v.configMap)
      writeKeys(
        vdir,
        await api.configMap(pod.namespace, v.configMap.name),
        v.configMap.items,
        `configMap ${pod.namespace}/${v.configMap.name}`,
        v.configMap.optional,
      );
    else if (v.secret)
      writeKeys(
        vdir,
        await api.secret(pod.namespace, v.secret.secretName),
        v.secret.items,
        `secret ${pod.namespace}/${v.secret.secretName}`,
        v.secret.optional,
      );
    else if (v.downwardAPI) writeDownward(vdir, v.downwardAPI.items ?? [], pod.fields);
    else if (v.projected) {
      for (const s of v.projected.sources) {
        if (s.serviceAccountToken) {
          const t = await api.token(
            pod.namespace,
            pod.serviceAccount,
            s.serviceAccountToken.audience,
            s.serviceAccountToken.expirationSeconds ?? 3600,
            { name: pod.name, uid: pod.uid },
          );
          fs.writeFileSync(path.join(vdir, s.serviceAccountToken.path), t);
        } else if (s.configMap)
          writeKeys(
            vdir,
            await api.configMap(pod.namespace, s.configMap.name),
            s.configMap.items,
            `configMap ${pod.namespace}/${s.configMap.name}`,
            s.configMap.optional,
          );
        else if (s.secret)
          writeKeys(
            vdir,
            await api.secret(pod.namespace, s.secret.name),
            s.secret.items,
            `secret ${pod.namespace}/${s.secret.name}`,
            s.secret.optional,
          );
        else if (s.downwardAPI) writeDownward(vdir, s.downwardAPI.items ?? [], pod.fields);
      }
    }
    // emptyDir and unknown kinds: an empty directory.
  }
  return out;
}

function writeDownward(dir: string, items: DownwardItem[], fields: Record<string, string>): void {
  for (const i of items) {
    const v = i.fieldRef ? fields[i.fieldRef.fieldPath] : undefined;
    fs.writeFileSync(path.join(dir, i.path), v ?? "");
  }
}

/** The bind mounts of one container (pure). */
export function containerBinds(mounts: VolumeMount[] | undefined, made: Map<string, string>): Bind[] {
  const binds: Bind[] = [];
  for (const m of mounts ?? []) {
    const src = made.get(m.name);
    if (!src) continue;
    binds.push({
      source: m.subPath ? path.join(src, m.subPath) : src,
      target: m.mountPath,
      ...(m.readOnly ? { readOnly: true } : {}),
    });
  }
  return binds;
}

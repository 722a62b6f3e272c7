// Keeps the enrolled-namespaces file beside the CNI socket (see
// cni/enrolled-namespaces.ts): the plugin reads it when ztunnel is not
// running, to fail closed for pods of enrolled namespaces.
//
// The set comes from the controller's model as ztunnel holds it (xDS): the
// namespaces of workloads whose tunnel is hbone, i.e. what tunnelOf
// (controller/translate/workloads.ts, the one enrolment rule) decided. No
// second rule here. Consequences: a namespace enrolled but still without
// pods is listed once its first pod appears in the model; a namespace where
// only some pods opted in by pod label is listed too (its other pods then
// wait for ztunnel as well, the safe side). ambit-system is never listed.
import { unlink } from "node:fs/promises";
import {
  type EnrolledNamespacesDoc,
  enrolledNamespacesPath,
  MESH_NAMESPACE,
} from "../../cni/enrolled-namespaces.js";
import { writeFileAtomic } from "../../core/files/write-atomic.js";
import type { MeshWorkload } from "../../core/model/types.js";

/** The namespaces to list, sorted (pure). */
export function enrolledNamespacesOf(workloads: Iterable<MeshWorkload>): string[] {
  const out = new Set<string>();
  for (const w of workloads) if (w.tunnel === "hbone" && w.namespace !== MESH_NAMESPACE) out.add(w.namespace);
  return [...out].sort();
}

export class EnrolledNamespacesFile {
  readonly path: string;
  private last?: string;
  private writing: Promise<void> = Promise.resolve();

  constructor(socketPath: string) {
    this.path = enrolledNamespacesPath(socketPath);
  }

  /** Rewrites the file when the set changed (atomically: temp file + rename). */
  update(namespaces: readonly string[]): Promise<void> {
    const key = namespaces.join("\n");
    if (key === this.last) return this.writing;
    this.last = key;
    const doc: EnrolledNamespacesDoc = { namespaces: [...namespaces], updated: new Date().toISOString() };
    // After the previous write, whether it worked or not (a failed one must not stop the later ones).
    this.writing = this.writing
      .catch(() => {})
      .then(() => writeFileAtomic(this.path, `${JSON.stringify(doc)}\n`));
    return this.writing.catch((e: Error) => {
      this.last = undefined; // try again next time
      throw e;
    });
  }

  /** Removes the file (uninstall: no ztunnel will come back). */
  async remove(): Promise<void> {
    await this.writing.catch(() => {});
    await unlink(this.path).catch(() => {});
    this.last = undefined;
  }
}

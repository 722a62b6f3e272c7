// The enrolled-namespaces file: the node agent (ztunnel) keeps, next to its
// CNI socket, the list of namespaces whose pods are enrolled in the mesh, so
// that the plugin can fail CLOSED for those pods while ztunnel is not
// running (it has no API access of its own). Written atomically (temp file +
// rename) by ztunnel/node-agent/zds-enrolled-file.ts; read here by the plugin.
// Imports only node: built-ins (the plugin starts in ~40 ms).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export const ENROLLED_NAMESPACES_FILE = "enrolled-namespaces.json";
/** The mesh's own namespace: never blocked, whatever the file says. */
export const MESH_NAMESPACE = "ambit-system";

export interface EnrolledNamespacesDoc {
  /** Sorted namespace names. */
  namespaces: string[];
  updated: string;
}

/** The file beside the node agent's socket. */
export function enrolledNamespacesPath(socketPath: string): string {
  return join(dirname(socketPath), ENROLLED_NAMESPACES_FILE);
}

/**
 * The listed namespaces, or undefined when the file is absent or unreadable
 * (a node where ztunnel never ran: the plugin keeps failing open).
 */
export function readEnrolledNamespaces(file: string): Set<string> | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const doc = JSON.parse(text) as Partial<EnrolledNamespacesDoc> | null;
    const list = doc?.namespaces;
    if (!Array.isArray(list)) return undefined;
    return new Set(list.filter((n): n is string => typeof n === "string" && n !== MESH_NAMESPACE));
  } catch {
    return undefined;
  }
}

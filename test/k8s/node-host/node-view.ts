// A test node's view of the file system. All test nodes share one machine,
// so host paths a node owns (its CNI config and binaries, the node agent's
// socket directory, whatever a hostPath volume names) live under the node's
// own root directory and are bind-mounted over the real path inside a mount
// namespace; paths every node shares (network namespaces, /proc, /sys, /dev)
// stay the host's. Containers and CNI plugins of a node run in such a mount
// namespace (unshare --mount, slave propagation so that pod namespaces
// mounted later under /var/run/netns show up), with the pod's volumes bound
// at their mount paths. The argv execs the program: the pid stays its own.
//
// A bind mount needs its mount point to exist; missing ones are created on
// the host (empty directories) and removed again by removeMountPoints().
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Host paths every node sees as they are. */
const SHARED_HOST_PATHS = ["/var/run/netns", "/run/netns", "/proc", "/sys", "/dev"];

/** Host paths each node has its own copy of, always (the CNI plugins need them). */
export const NODE_LOCAL_PATHS = ["/etc/cni/net.d", "/opt/cni/bin", "/var/run/ambit", "/var/lib/cni"];

export interface Bind {
  source: string;
  target: string;
  readOnly?: boolean;
}

export class NodeView {
  /** Mount points this process created on the host, in creation order. */
  private static created: string[] = [];

  constructor(readonly root: string) {
    for (const p of NODE_LOCAL_PATHS) fs.mkdirSync(this.local(p), { recursive: true });
  }

  /** The node's own copy of a host path. */
  local(hostPath: string): string {
    return path.join(this.root, hostPath);
  }

  /** Where a hostPath volume's path is for this node. */
  hostPath(p: string): string {
    const norm = path.resolve(p);
    if (SHARED_HOST_PATHS.some((s) => norm === s || norm.startsWith(`${s}/`))) return norm;
    return this.local(norm);
  }

  /** Where a path seen by the node's processes is from the host (its node-local directories translated). */
  hostPathOf(p: string): string {
    return visiblePath(path.resolve(p), this.nodeBinds());
  }

  /** The node-local paths bound for every process of the node. */
  nodeBinds(): Bind[] {
    return NODE_LOCAL_PATHS.map((p) => ({ source: this.local(p), target: p }));
  }

  /** argv that runs `argv` in a new mount namespace with the node's and the extra binds (pure but for mount points). */
  wrap(argv: readonly string[], extra: Bind[] = []): string[] {
    const binds = keepVisible([...this.nodeBinds(), ...extra], REPO_ROOT, KEEP_STAGE);
    for (const [i, b] of binds.entries()) ensureMountPoint(b, binds.slice(0, i));
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      ...binds.map((b) => `mount --bind ${q(b.source)} ${q(b.target)}`),
      ...binds.filter((b) => b.readOnly).map((b) => `mount -o remount,bind,ro ${q(b.target)}`),
      'exec "$@"',
    ].join("\n");
    return ["unshare", "--mount", "--propagation", "slave", "--", "sh", "-ec", script, "sh", ...argv];
  }

  /** Removes the (empty) mount points created on the host, deepest first. */
  static removeMountPoints(): void {
    for (const p of [...NodeView.created].reverse()) {
      try {
        if (fs.statSync(p).isDirectory()) fs.rmdirSync(p);
        else if (fs.statSync(p).size === 0) fs.unlinkSync(p);
      } catch {
        // not empty, or gone: leave it
      }
    }
    NodeView.created = [];
  }

  static recordCreated(p: string): void {
    NodeView.created.push(p);
  }
}

/**
 * The repository the test runs from (the nearest ancestor of this file with
 * node_modules): the `ambit` image runs its CLI and libraries from there, so
 * a pod must see it even when a volume is mounted over one of its ancestors
 * (an emptyDir on /tmp hides a clone under /tmp).
 */
const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "node_modules")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
/** Where the repository is bound aside before the pod's volumes cover it (never a mount target). */
const KEEP_STAGE = "/run/ambit-node-host-repo";

/**
 * `binds` plus what keeps `keep` visible when a bind target is one of its
 * ancestors: `keep` is bound to `stage` first (while still reachable), and
 * back onto its own path last (pure).
 */
export function keepVisible(binds: Bind[], keep: string, stage: string): Bind[] {
  if (!binds.some((b) => keep.startsWith(`${b.target}/`))) return binds;
  return [{ source: keep, target: stage }, ...binds, { source: stage, target: keep }];
}

/**
 * Where `target` is, once the earlier binds are mounted: under the deepest
 * earlier bind that covers it, the path inside that bind's source (pure).
 */
export function visiblePath(target: string, earlier: Bind[]): string {
  let best: Bind | undefined;
  for (const b of earlier)
    if (
      (target === b.target || target.startsWith(`${b.target}/`)) &&
      b.target.length > (best?.target.length ?? -1)
    )
      best = b;
  return best ? path.join(best.source, target.slice(best.target.length)) : target;
}

function ensureMountPoint(b: Bind, earlier: Bind[]): void {
  const target = visiblePath(b.target, earlier);
  if (fs.existsSync(target)) return;
  const isFile = fs.existsSync(b.source) && fs.statSync(b.source).isFile();
  const dir = isFile ? path.dirname(target) : target;
  const missing: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    fs.mkdirSync(d);
    NodeView.recordCreated(d);
  }
  if (isFile && !fs.existsSync(target)) {
    fs.writeFileSync(target, "");
    NodeView.recordCreated(target);
  }
}

// Finds pods' network namespaces by their IPs, for pods the CNI plugin never
// told this ztunnel about: pods that existed before ambit was installed, and
// pods added while no ztunnel was running. The candidates are the runtime's
// named namespaces (/var/run/netns/*) and, when /proc shows other
// processes (hostPID), each distinct /proc/<pid>/ns/net. Each is entered
// for a moment to read its interface addresses (getifaddrs runs in the
// calling thread's namespace).
import { readdir, stat } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { withNetns } from "./native.js";

export interface NetnsScanOptions {
  /** Default /var/run/netns. */
  netnsDir?: string;
  /** Default /proc; "" skips it. */
  procDir?: string;
  /** Only names in netnsDir with this prefix. */
  namePrefix?: string;
}

/** The addresses (IPv4 and IPv6, loopback excluded) inside a namespace. */
export function netnsAddresses(netnsPath: string): string[] {
  return withNetns(netnsPath, () => {
    const out: string[] = [];
    for (const addrs of Object.values(os.networkInterfaces())) {
      for (const a of addrs ?? []) if (!a.internal) out.push(a.address);
    }
    return out;
  });
}

async function namespaceId(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** Candidate namespace paths, one per distinct namespace, named ones first; this process's own excluded. */
export async function candidateNamespaces(opts: NetnsScanOptions = {}): Promise<string[]> {
  const seen = new Set<string>();
  const own = await namespaceId("/proc/self/ns/net");
  if (own) seen.add(own);
  const out: string[] = [];
  const consider = async (path: string) => {
    const id = await namespaceId(path);
    if (id && !seen.has(id)) {
      seen.add(id);
      out.push(path);
    }
  };
  const netnsDir = opts.netnsDir ?? "/var/run/netns";
  const names = (await readdir(netnsDir).catch(() => [] as string[])).sort();
  for (const name of names) if (name.startsWith(opts.namePrefix ?? "")) await consider(join(netnsDir, name));
  const procDir = opts.procDir ?? "/proc";
  if (procDir) {
    const pids = (await readdir(procDir).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
    for (const pid of pids) await consider(join(procDir, pid, "ns", "net"));
  }
  return out;
}

/** For each wanted IP found in some namespace: that namespace's path. */
export async function findNetnsByIp(
  wanted: Iterable<string>,
  opts: NetnsScanOptions = {},
): Promise<Map<string, string>> {
  const want = new Set(wanted);
  const found = new Map<string, string>();
  if (want.size === 0) return found;
  for (const path of await candidateNamespaces(opts)) {
    let addrs: string[];
    try {
      addrs = netnsAddresses(path);
    } catch {
      continue; // gone meanwhile, or not enterable
    }
    for (const a of addrs) {
      if (want.has(a) && !found.has(a)) found.set(a, path);
    }
    if (found.size === want.size) break;
  }
  return found;
}

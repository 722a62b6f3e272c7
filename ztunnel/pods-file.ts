// The node's pods and their network namespaces, as the node host (`ambit up`,
// later the CNI plugin) writes them: a JSON list, rewritten atomically. A
// ztunnel that restarts re-reads it and finds every pod again.
import { readFile } from "node:fs/promises";
import { AmbitError } from "../core/errors/errors.js";
import { type FilePoller, pollFile } from "../core/files/poll-file.js";
import type { EnrolledPod } from "./node-agent/agent.js";

export function parsePodsFile(text: string, file: string): EnrolledPod[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new AmbitError("CONFIG", `${file}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) throw new AmbitError("CONFIG", `${file}: want a list of {key, netnsPath, ip}`);
  return data.map((p, i) => {
    const o = p as Partial<EnrolledPod>;
    for (const f of ["key", "netnsPath", "ip"] as const) {
      if (typeof o[f] !== "string" || o[f] === "") throw new AmbitError("CONFIG", `${file}: [${i}].${f}: must be a non-empty string`);
    }
    return { key: o.key!, netnsPath: o.netnsPath!, ip: o.ip! };
  });
}

/** Calls `onPods` with the list now and on every change; a bad file keeps the last good list. */
export class PodsFileWatcher {
  private poller?: FilePoller;
  constructor(
    private readonly file: string,
    private readonly onPods: (pods: EnrolledPod[]) => void,
    private readonly onError: (e: Error) => void,
  ) {}

  async start(): Promise<void> {
    this.poller = pollFile(this.file, 1000, () => void this.read());
    await this.read();
  }

  private async read(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return this.onPods([]);
      return this.onError(e as Error);
    }
    try {
      this.onPods(parsePodsFile(text, this.file));
    } catch (e) {
      this.onError(e as Error);
    }
  }

  close(): void {
    this.poller?.close();
  }
}

// Live facts from the local runner (pod IPs, nodes, readiness) arrive as a
// JSON file that `ambit up` rewrites atomically. A file survives a controller
// restart, so a restarted controller knows every pod again at once.
import { readFile } from "node:fs/promises";
import { AmbitError } from "../core/errors/errors.js";
import { type FilePoller, pollFile } from "../core/files/poll-file.js";
import type { LiveFacts } from "./provider/objects.js";

export interface FactsFileJson {
  pods: Record<string, { ip?: string; node?: string; ready?: boolean }>;
  nodes: Record<string, { address: string }>;
}

export function parseFacts(text: string, file: string): LiveFacts {
  let json: Partial<FactsFileJson>;
  try {
    json = JSON.parse(text) as Partial<FactsFileJson>;
  } catch (e) {
    throw new AmbitError("CONFIG", `${file}: not JSON: ${(e as Error).message}`);
  }
  return {
    pods: new Map(Object.entries(json.pods ?? {})),
    nodes: new Map(Object.entries(json.nodes ?? {})),
  };
}

export function factsToJson(f: LiveFacts): FactsFileJson {
  return { pods: Object.fromEntries(f.pods), nodes: Object.fromEntries(f.nodes) };
}

/** Calls `onFacts` with the file's content now and whenever it changes; a bad file keeps the last good facts. */
export class FactsFileWatcher {
  private closed = false;
  private poller?: FilePoller;
  constructor(
    private readonly file: string,
    private readonly onFacts: (f: LiveFacts) => void,
    private readonly onError: (e: Error) => void,
  ) {}

  async start(): Promise<void> {
    // Polling survives the atomic rename the writer uses; 100 ms is plenty for a local mesh.
    this.poller = pollFile(this.file, 1000, () => {
      if (!this.closed) void this.read();
    });
    await this.read();
  }

  private async read(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.onError(e as Error);
      return;
    }
    try {
      this.onFacts(parseFacts(text, this.file));
    } catch (e) {
      this.onError(e as Error);
    }
  }

  close(): void {
    this.closed = true;
    this.poller?.close();
  }
}

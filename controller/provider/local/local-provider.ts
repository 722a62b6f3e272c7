// The local provider: a directory of ordinary Kubernetes YAML, watched. Each
// change yields a new ClusterSnapshot ("snapshot" event). A file that stops
// parsing keeps serving the objects of its last good version; an object that
// becomes invalid keeps its last good version too; both are reported.
import { EventEmitter } from "node:events";
import { type FSWatcher, watch } from "node:fs";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { AmbitError, ObjectError } from "../../../core/errors/errors.js";
import { type Logger, logger as makeLogger } from "../../../core/telemetry/logger.js";
import { type ClusterSnapshot, type LiveFacts, objectRef, type Pod } from "../objects.js";
import { assembleSnapshot, emptyFacts } from "./assemble.js";
import { parseFile, type SourcedObject } from "./parse.js";

export interface LocalProviderOptions {
  dir: string;
  logger?: Logger;
  /** Quiet time after a file event before re-reading (ms). */
  debounceMs?: number;
  /**
   * Where the objects each file serves (last good versions included) are
   * written after every read, and read back at start: an object that is
   * invalid on disk when the controller starts keeps the version it had.
   */
  lastGoodFile?: string;
}

interface FileState {
  text: string;
  /** The objects this file currently contributes (last good versions where needed). */
  served: SourcedObject[];
  errors: ObjectError[];
}

const YAML_FILE = /\.ya?ml$/i;

/** Every *.yaml / *.yml under `dir` (hidden entries skipped), relative, sorted. */
export async function listYamlFiles(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [dir];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) {
        dirs.push(p);
        await walk(p);
      } else if (e.isFile() && YAML_FILE.test(e.name)) files.push(relative(dir, p).split(sep).join("/"));
    }
  };
  await walk(dir);
  files.sort();
  return { files, dirs };
}

export class LocalProvider extends EventEmitter {
  readonly dir: string;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private files = new Map<string, FileState>();
  private facts: LiveFacts = emptyFacts();
  private readonly vipMemory = new Map<string, string>();
  private current: ClusterSnapshot;
  private currentJson = "";
  private assembleErrors: ObjectError[] = [];
  private errorKeys = new Set<string>();
  private watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanAgain = false;
  private closed = false;
  private readonly lastGoodFile: string | undefined;
  /** Read from lastGoodFile at start: file → the objects it served then (used once, as the previous version). */
  private persisted = new Map<string, SourcedObject[]>();
  private persistedJson = "";

  constructor(opts: LocalProviderOptions) {
    super();
    this.dir = opts.dir;
    this.log = opts.logger ?? makeLogger("controller.provider.local");
    this.debounceMs = opts.debounceMs ?? 50;
    this.lastGoodFile = opts.lastGoodFile;
    this.current = assembleSnapshot([], this.facts, this.vipMemory).snapshot;
  }

  /** Reads the directory once and starts watching it. Rejects when the directory cannot be read. */
  async start(): Promise<void> {
    await this.loadLastGood();
    try {
      await this.scan();
    } catch (e) {
      throw new AmbitError("CONFIG", `cannot read config directory ${this.dir}: ${(e as Error).message}`);
    }
    this.log.info(
      { dir: this.dir, files: this.files.size, errors: this.errors().length },
      "local provider ready",
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    await this.scanning;
    this.removeAllListeners();
  }

  snapshot(): ClusterSnapshot {
    return this.current;
  }

  /** The pods to run (workloads expanded), with the facts known so far. */
  pods(): Pod[] {
    return this.current.pods;
  }

  /** File, object and field errors (and ignored unknown kinds), current as of the last read. */
  errors(): ObjectError[] {
    const out: ObjectError[] = [];
    for (const f of [...this.files.keys()].sort()) out.push(...this.files.get(f)!.errors);
    out.push(...this.assembleErrors);
    return out;
  }

  /** Replaces the pod and/or node facts given (the runner sends its whole view each time). */
  setFacts(facts: Partial<LiveFacts>): void {
    this.facts = { pods: facts.pods ?? this.facts.pods, nodes: facts.nodes ?? this.facts.nodes };
    this.rebuild();
  }

  acceptFacts(facts: Partial<LiveFacts>): void {
    this.setFacts(facts);
  }

  /** Re-reads the directory now (also what a file event triggers, debounced). */
  reload(): Promise<void> {
    return this.scan();
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.scan().catch((e) => this.log.error({ err: e }, "re-reading config directory failed"));
    }, this.debounceMs);
  }

  private scan(): Promise<void> {
    if (this.scanning) {
      this.rescanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.rescanAgain = false;
          await this.scanOnce();
        } while (this.rescanAgain && !this.closed);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const { files, dirs } = await listYamlFiles(this.dir);
    this.syncWatchers(dirs);
    const next = new Map<string, FileState>();
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(join(this.dir, file), "utf8");
      } catch {
        continue; // removed between listing and reading: the next event rescans
      }
      const persisted = this.persisted.get(file);
      const prev =
        this.files.get(file) ?? (persisted ? { text: "", served: persisted, errors: [] } : undefined);
      next.set(file, prev && prev.text === text ? prev : readFileState(file, text, prev));
    }
    if (this.closed) return;
    this.files = next;
    this.persisted.clear();
    this.rebuild();
    await this.saveLastGood();
  }

  private async loadLastGood(): Promise<void> {
    if (!this.lastGoodFile) return;
    let text: string;
    try {
      text = await readFile(this.lastGoodFile, "utf8");
    } catch {
      return; // first start
    }
    try {
      const saved = JSON.parse(text) as Record<string, SourcedObject[]>;
      for (const [file, objects] of Object.entries(saved))
        if (Array.isArray(objects)) this.persisted.set(file, objects);
      this.persistedJson = text;
    } catch (e) {
      this.log.warn(
        { file: this.lastGoodFile, err: (e as Error).message },
        "last good configuration unreadable; ignored",
      );
    }
  }

  private async saveLastGood(): Promise<void> {
    if (!this.lastGoodFile) return;
    const saved: Record<string, SourcedObject[]> = {};
    for (const [file, st] of [...this.files.entries()].sort(([a], [b]) => (a < b ? -1 : 1)))
      saved[file] = st.served;
    const json = JSON.stringify(saved);
    if (json === this.persistedJson) return;
    try {
      await mkdir(dirname(this.lastGoodFile), { recursive: true });
      const tmp = `${this.lastGoodFile}.${process.pid}.tmp`;
      await writeFile(tmp, json, { mode: 0o600 });
      await rename(tmp, this.lastGoodFile);
      this.persistedJson = json;
    } catch (e) {
      this.log.warn(
        { file: this.lastGoodFile, err: (e as Error).message },
        "cannot save the last good configuration",
      );
    }
  }

  private rebuild(): void {
    const files = [...this.files.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([file, st]) => ({ file, objects: st.served }));
    const { snapshot, errors } = assembleSnapshot(files, this.facts, this.vipMemory);
    this.assembleErrors = errors;
    this.reportNewErrors();
    const json = JSON.stringify(snapshot);
    if (json === this.currentJson) return;
    this.currentJson = json;
    this.current = snapshot;
    this.emit("snapshot", snapshot);
  }

  private reportNewErrors(): void {
    const all = this.errors();
    const keys = new Set(all.map((e) => e.message));
    for (const e of all) {
      if (this.errorKeys.has(e.message)) continue;
      if (e.code === "UNKNOWN_KIND") this.log.warn({ code: e.code }, e.message);
      else this.log.error({ code: e.code }, e.message);
    }
    const changed = keys.size !== this.errorKeys.size || [...keys].some((k) => !this.errorKeys.has(k));
    this.errorKeys = keys;
    if (changed) this.emit("errors", all);
  }

  private syncWatchers(dirs: string[]): void {
    if (this.closed) return;
    const want = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!want.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of want) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, { persistent: false }, () => this.schedule());
        w.on("error", () => {
          w.close();
          this.watchers.delete(d);
          this.schedule();
        });
        this.watchers.set(d, w);
      } catch {
        // The directory vanished already; the rescan that follows drops it.
      }
    }
  }
}

/** Parses a file's new text, keeping last good objects where the new text fails. */
export function readFileState(file: string, text: string, prev: FileState | undefined): FileState {
  const parsed = parseFile(text, file);
  const errors = [...parsed.errors];
  if (parsed.unreadable) {
    const kept = prev?.served ?? [];
    if (kept.length > 0) {
      errors.push(
        new ObjectError(
          "YAML_PARSE",
          { kind: "file", name: file, file },
          undefined,
          `keeping the ${kept.length} object(s) of its last good version`,
        ),
      );
    }
    return { text, served: kept, errors };
  }
  const served = [...parsed.objects];
  if (prev && parsed.rejected.length > 0) {
    const prevByRef = new Map(prev.served.map((so) => [objectRef(so.object), so]));
    for (const ref of parsed.rejected) {
      const old = prevByRef.get(ref);
      if (old) served.push(old);
    }
  }
  return { text, served, errors };
}

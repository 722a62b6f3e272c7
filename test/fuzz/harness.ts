// The fuzz harness shared by test/unit/fuzz-*.test.ts: run budgets, a corpus
// of seeds on disk, and one way to run a property over both.
//
// CI runs each property with a short budget (the `ci` count) after replaying
// every seed in test/fuzz/corpus/<target>/. `npm run fuzz` (scripts/fuzz.mjs)
// sets FUZZ_RUNS for a long budget and FUZZ_SAVE=1, so that a failing input
// (already shrunk by fast-check) is written to the corpus and replayed by
// every later CI run: a found bug stays a regression test.
//
//   FUZZ_RUNS=N   runs per property (default: the property's CI budget)
//   FUZZ_SEED=S   fast-check seed, to reproduce a run
//   FUZZ_SAVE=1   write failing inputs to the corpus
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";

/** Where the corpus lives (tests run from the repository root). */
export const CORPUS_DIR = join(process.cwd(), "test/fuzz/corpus");

export const longRun = process.env.FUZZ_RUNS !== undefined && process.env.FUZZ_RUNS !== "";

/** Runs for one property: FUZZ_RUNS when set, else the CI budget given. */
export function runs(ci: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return longRun && Number.isInteger(n) && n > 0 ? n : ci;
}

/** JSON with byte arrays kept as {"$base64": "..."} so binary inputs survive a round trip to disk. */
export function encodeInput(input: unknown): string {
  return JSON.stringify(
    input,
    (_k, v: unknown) => {
      if (v instanceof Uint8Array) return { $base64: Buffer.from(v).toString("base64") };
      if (v === undefined) return { $undefined: true };
      if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) };
      if (typeof v === "bigint") return { $bigint: v.toString() };
      return v;
    },
    2,
  );
}

export function decodeInput<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (typeof o.$base64 === "string") return Buffer.from(o.$base64, "base64");
      if (o.$undefined === true) return undefined;
      if (typeof o.$number === "string") return Number(o.$number);
      if (typeof o.$bigint === "string") return BigInt(o.$bigint);
    }
    return v;
  }) as T;
}

export interface Seed<T> {
  /** File name inside the target's corpus directory. */
  name: string;
  input: T;
}

/** The seeds of one target (sorted by file name); an absent directory is an empty corpus. */
export function loadCorpus<T>(target: string): Seed<T>[] {
  const dir = join(CORPUS_DIR, target);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
  return names.sort().map((name) => {
    const doc = decodeInput<{ input: T }>(readFileSync(join(dir, name), "utf8"));
    return { name, input: doc.input };
  });
}

/** Writes one input to the corpus (named by its content hash) and returns the path. */
export function saveSeed(target: string, input: unknown, note: string): string {
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const body = encodeInput({ note, input });
  const hash = createHash("sha256").update(encodeInput(input)).digest("hex").slice(0, 16);
  const path = join(dir, `found-${hash}.json`);
  writeFileSync(path, `${body}\n`);
  return path;
}

export interface FuzzOptions {
  /** Corpus directory name (test/fuzz/corpus/<target>). */
  target: string;
  /** Runs per property in CI. */
  ci: number;
  /** Extra fast-check parameters (e.g. examples). */
  params?: Partial<fc.Parameters<unknown>>;
}

/**
 * Replays the target's corpus through `check`, then runs `check` on `ci`
 * (or FUZZ_RUNS) generated inputs. `check` throws (or rejects) on a
 * property violation. With FUZZ_SAVE=1 a counterexample is written to the
 * corpus before the failure is reported. Returns how many inputs were checked.
 */
export async function fuzz<T>(
  opts: FuzzOptions,
  arb: fc.Arbitrary<T>,
  check: (input: T) => void | Promise<void>,
): Promise<number> {
  const seeds = loadCorpus<T>(opts.target);
  for (const s of seeds) {
    try {
      await check(s.input);
    } catch (err) {
      throw new Error(`corpus seed ${opts.target}/${s.name} fails: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const numRuns = runs(opts.ci);
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
  const result = await fc.check(
    fc.asyncProperty(arb, async (x) => {
      await check(x);
    }),
    { numRuns, ...(seed !== undefined ? { seed } : {}), ...(opts.params as object) },
  );
  if (result.failed) {
    let where = "";
    if (process.env.FUZZ_SAVE === "1" && result.counterexample) {
      const path = saveSeed(opts.target, result.counterexample[0], String(result.errorInstance ?? ""));
      where = `\ncounterexample saved to ${path}`;
    }
    const err = result.errorInstance as Error | undefined;
    const cause = err instanceof Error ? `\n${err.stack ?? err.message}` : "";
    throw new Error(`${fc.defaultReportMessage(result)}${where}${cause}`, { cause: err });
  }
  return seeds.length + numRuns;
}

/** Races a promise against a deadline; rejects with `what` when it is missed. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

// Reads a translate golden case (test/fixtures/translate/<case>/) and runs it
// through the local provider's parser and the translator; shared by the
// golden test and by anyone regenerating or inspecting a case.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { assembleSnapshot, listYamlFiles, parseFile } from "../../controller/provider/local/index.js";
import type { ClusterSnapshot, LiveFacts } from "../../controller/provider/objects.js";
import { translate } from "../../controller/translate/index.js";

interface FactsFile {
  pods?: Record<string, { ip?: string; node?: string; ready?: boolean }>;
  nodes?: Record<string, { address: string }>;
}

function readFacts(dir: string): LiveFacts {
  const f = join(dir, "facts.yaml");
  const raw: FactsFile = existsSync(f) ? (parseYaml(readFileSync(f, "utf8")) ?? {}) : {};
  return { pods: new Map(Object.entries(raw.pods ?? {})), nodes: new Map(Object.entries(raw.nodes ?? {})) };
}

async function readInput(dir: string): Promise<{ file: string; text: string }[]> {
  const single = join(dir, "input.yaml");
  if (existsSync(single)) return [{ file: "input.yaml", text: readFileSync(single, "utf8") }];
  const inputDir = join(dir, "input");
  const { files } = await listYamlFiles(inputDir);
  return files.map((file) => ({ file, text: readFileSync(join(inputDir, file), "utf8") }));
}

/** The case's snapshot (input parsed, facts merged) and the provider's errors as messages. */
export async function loadCase(
  dir: string,
): Promise<{ snapshot: ClusterSnapshot; providerErrors: string[] }> {
  const parsed = (await readInput(dir)).map(({ file, text }) => ({ file, parse: parseFile(text, file) }));
  const { snapshot, errors: assembleErrors } = assembleSnapshot(
    parsed.map((p) => ({ file: p.file, objects: p.parse.objects })),
    readFacts(dir),
  );
  const providerErrors = [...parsed.flatMap((p) => p.parse.errors), ...assembleErrors].map(
    (e) => `${e.code}: ${e.message}`,
  );
  return { snapshot, providerErrors };
}

/** Everything a case shows: provider errors, translator errors and warnings (as messages), and the model. */
export async function runCase(dir: string): Promise<unknown> {
  const { snapshot, providerErrors } = await loadCase(dir);
  const out = translate(snapshot, { rootNamespace: "ambit-system" });
  return {
    providerErrors,
    errors: out.errors.map((e) => `${e.code}: ${e.message}`),
    warnings: out.warnings.map((e) => `${e.code}: ${e.message}`),
    services: out.services,
    workloads: out.workloads,
    policies: out.policies,
  };
}

// Golden-file tests of the pure translator. Each directory under
// test/fixtures/translate/ holds `input.yaml` (or an `input/` directory of
// YAML files), optional `facts.yaml` (live facts as the local runner would
// report them) and `expected.json`. The input is read with the local
// provider's parser (no watching), translated, and compared with the file.
// UPDATE_GOLDEN=1 rewrites the expected files.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { translate } from "../../controller/translate/index.js";
import { loadCase, runCase } from "./translate-harness.js";

const root = join(process.cwd(), "test/fixtures/translate");
const update = process.env.UPDATE_GOLDEN === "1";

const cases = readdirSync(root)
  .filter((d) => statSync(join(root, d)).isDirectory())
  .sort();

t.ok(cases.length >= 9, "all golden cases are present");

for (const name of cases) {
  t.test(name, async (t) => {
    const dir = join(root, name);
    const got = JSON.parse(JSON.stringify(await runCase(dir)));
    const expectedFile = join(dir, "expected.json");
    if (update) {
      writeFileSync(expectedFile, `${JSON.stringify(got, null, 2)}\n`);
      t.pass(`rewrote ${expectedFile}`);
      return;
    }
    t.ok(existsSync(expectedFile), "expected.json exists (UPDATE_GOLDEN=1 writes it)");
    t.same(got, JSON.parse(readFileSync(expectedFile, "utf8")));
  });
}

t.test("translation is deterministic and does not mutate its input", async (t) => {
  for (const name of cases) {
    const { snapshot } = await loadCase(join(root, name));
    const before = JSON.stringify(snapshot);
    const a = JSON.stringify(translate(snapshot, { rootNamespace: "ambit-system" }));
    const b = JSON.stringify(translate(snapshot, { rootNamespace: "ambit-system" }));
    t.equal(a, b, `${name}: same output twice`);
    t.equal(JSON.stringify(snapshot), before, `${name}: snapshot untouched`);
  }
});

// Golden-file tests of the waypoint translator. Each directory under
// test/fixtures/waypoint-translate/ holds `input.yaml` (optional
// `facts.yaml`) and `expected.json`: errors, warnings, status conditions and
// the waypoint plans. UPDATE_GOLDEN=1 rewrites the expected files.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { translate } from "../../controller/translate/index.js";
import { translateWaypoints } from "../../controller/translate/waypoint.js";
import { loadCase } from "./translate-harness.js";

const root = join(process.cwd(), "test/fixtures/waypoint-translate");
const update = process.env.UPDATE_GOLDEN === "1";
const cases = readdirSync(root)
  .filter((d) => statSync(join(root, d)).isDirectory())
  .sort();

async function run(dir: string) {
  const { snapshot, providerErrors } = await loadCase(dir);
  const mesh = translate(snapshot, { rootNamespace: "ambit-system" });
  const out = translateWaypoints(snapshot, mesh, { rootNamespace: "ambit-system" });
  return {
    providerErrors,
    errors: out.errors.map((e) => `${e.code}: ${e.message}`),
    warnings: out.warnings.map((e) => `${e.code}: ${e.message}`),
    statuses: out.statuses,
    waypoints: out.waypoints,
  };
}

for (const name of cases) {
  t.test(name, async (t) => {
    const dir = join(root, name);
    const got = JSON.parse(JSON.stringify(await run(dir)));
    const file = join(dir, "expected.json");
    if (update) {
      writeFileSync(file, `${JSON.stringify(got, null, 2)}\n`);
      t.pass(`rewrote ${file}`);
      return;
    }
    t.ok(existsSync(file), "expected.json exists (UPDATE_GOLDEN=1 writes it)");
    t.same(got, JSON.parse(readFileSync(file, "utf8")));
  });
}

t.test("translation is deterministic", async (t) => {
  for (const name of cases) {
    const a = JSON.stringify(await run(join(root, name)));
    const b = JSON.stringify(await run(join(root, name)));
    t.equal(a, b, name);
  }
});

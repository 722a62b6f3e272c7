// Where `ambit up --observability` finds its programs: a given Jaeger
// binary as is (or a clear error), a stamped cached build without building,
// the build script of this checkout from any build tree, Prometheus when present.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import {
  cachedJaegerPath,
  ensureJaeger,
  ensurePrometheus,
  findBuildScript,
} from "../../local/observability-binaries.js";

t.test("AMBIT_JAEGER_BIN is used as is; a missing one is an error naming it", async (t) => {
  const lines: string[] = [];
  t.equal(await ensureJaeger((l) => lines.push(l), { jaegerBin: process.execPath }), process.execPath);
  await t.rejects(
    ensureJaeger(() => undefined, { jaegerBin: "/nonexistent/jaeger" }),
    {
      code: "OBSERVABILITY",
      message: /AMBIT_JAEGER_BIN: \/nonexistent\/jaeger does not exist/,
    },
  );
  t.same(lines, [], "no build, no progress");
});

t.test("a stamped cached build is used without building", async (t) => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-cache-"));
  t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
  const bin = cachedJaegerPath(cache);
  t.equal(bin, path.join(cache, "bin", "jaeger"));
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  fs.writeFileSync(bin, "#!/bin/sh\n", { mode: 0o755 });
  fs.writeFileSync(path.join(cache, "bin", ".jaeger-v1.76.0"), "");
  const lines: string[] = [];
  t.equal(await ensureJaeger((l) => lines.push(l), { cacheDir: cache }), bin);
  t.same(lines, []);
});

t.test("the build script is found from the module's own tree", async (t) => {
  const found = findBuildScript();
  t.ok(found && fs.existsSync(found), `found ${found}`);
  t.equal(path.basename(found ?? ""), "build-jaeger.sh");
  t.equal(findBuildScript("/"), undefined, "none above /");
});

t.test("prometheus: an existing binary is returned at once", async (t) => {
  const lines: string[] = [];
  t.equal(await ensurePrometheus((l) => lines.push(l), process.execPath), process.execPath);
  t.same(lines, []);
});

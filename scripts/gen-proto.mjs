// Generates TypeScript from core/proto with buf + protoc-gen-es (both from npm).
// Skips work when the generated tree is newer than every .proto file.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const protoDir = join(root, "core/proto");
const outDir = join(root, "core/gen");

function newest(dir, ext) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, ext));
    else if (p.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

const stamp = join(outDir, ".stamp");
if (existsSync(stamp) && statSync(stamp).mtimeMs >= newest(protoDir, ".proto")) process.exit(0);
rmSync(outDir, { recursive: true, force: true });
const bin = join(root, "node_modules/.bin");
execFileSync(join(bin, "buf"), ["generate"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
});
execFileSync("touch", [stamp]);

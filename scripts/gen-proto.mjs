// Generates TypeScript from core/proto with buf + protoc-gen-es (both from npm).
// Skips work when the generated tree is newer than every .proto file.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const protoDir = join(root, "core/proto");
const outDir = join(root, "core/gen");

// The fingerprint of the inputs: every .proto file's path, size and mtime.
function fingerprint(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...fingerprint(p));
    else if (p.endsWith(".proto")) {
      const s = statSync(p);
      out.push(`${p}:${s.size}:${s.mtimeMs}`);
    }
  }
  return out.sort();
}

const stamp = join(outDir, ".stamp");
const inputs = fingerprint(protoDir).join("\n");
if (existsSync(stamp) && readFileSync(stamp, "utf8") === inputs) process.exit(0);
rmSync(outDir, { recursive: true, force: true });
const bin = join(root, "node_modules/.bin");
execFileSync(join(bin, "buf"), ["generate"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
});
writeFileSync(stamp, inputs);

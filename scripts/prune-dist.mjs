// tsc never deletes what it emitted before: a test file that was renamed or
// removed would keep running from dist/ (and fail as "no tests found").
// Removes every dist/**/*.js (and its .map) whose .ts source is gone.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");
let removed = 0;
if (existsSync(dist)) {
  for (const e of readdirSync(dist, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith(".js")) continue;
    const file = join(e.parentPath ?? e.path, e.name);
    const source = join(root, relative(dist, file)).replace(/\.js$/, ".ts");
    if (existsSync(source)) continue;
    rmSync(file);
    rmSync(`${file}.map`, { force: true });
    removed++;
  }
}
if (removed > 0) console.log(`prune-dist: removed ${removed} file(s) whose source is gone`);

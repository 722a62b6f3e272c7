// Every `ambit` command answers --help with a usage line and an example, and
// exits 0 without doing anything else. The commands are found from the
// built cli/commands directory, so a new command without help fails here.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";

const here = path.dirname(fileURLToPath(import.meta.url));
const cliDir = path.resolve(here, "../../cli");
const main = path.join(cliDir, "main.js");
const commands = fs
  .readdirSync(path.join(cliDir, "commands"))
  .filter((f) => f.endsWith(".js"))
  .map((f) => f.slice(0, -3))
  .sort();

function ambit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // No tap loaders in the child: it is the command as a user runs it.
    const env = { ...process.env, NODE_OPTIONS: "" };
    execFile(process.execPath, [main, ...args], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

// 15 node processes, sequential: slow on a loaded 2-core machine, not stuck.
t.setTimeout(180_000);

t.ok(commands.length >= 10, `found the commands (${commands.join(", ")})`);

for (const cmd of commands) {
  t.test(`ambit ${cmd} --help`, async (t) => {
    const r = await ambit([cmd, "--help"]);
    t.equal(r.code, 0, "exits 0", { stderr: r.stderr });
    t.match(r.stdout, new RegExp(`^usage: ambit ${cmd}\\b`, "m"), "a usage line naming the command");
    const example = /^examples?:\n((?: {2}.+\n?)+)/m.exec(r.stdout);
    t.ok(example, "an example section", { stdout: r.stdout });
    t.match(example?.[1] ?? "", new RegExp(`ambit ${cmd}\\b`), "the example runs this command");
  });
}

t.test("ambit --help lists every command", async (t) => {
  const r = await ambit(["--help"]);
  t.equal(r.code, 0);
  for (const cmd of commands) t.match(r.stdout, new RegExp(`^ {2}${cmd} `, "m"), `lists ${cmd}`);
});

t.test("an unknown command is refused with the list", async (t) => {
  const r = await ambit(["no-such-command"]);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown command 'no-such-command'/);
});

// Memory admission reads a real cgroup's limit, on whichever cgroup version
// this host runs (v1 memory.limit_in_bytes or v2 memory.max): a ztunnel
// process started in a memory cgroup of its own, without --memory-limit-mb,
// takes 90% of that cgroup's limit, measures the cgroup's working set, and
// comes under pressure once what it holds crosses that line. The cgroup
// (`ambit-t<random>`) is made by the test and removed when it ends.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import t from "tap";
import { memoryCgroup } from "../../ztunnel/proxy/memory-pressure.js";
import { needsRoot } from "./netns-fixture.js";

const MB = 1024 * 1024;
const LIMIT_MB = 320;

/** A new memory cgroup beside this process's own (v1 or v2, as the host has it), or a reason it cannot be made. */
function makeCgroup(name: string): { dir: string; limitFile: string } | string {
  const own = memoryCgroup(fs.readFileSync("/proc/self/cgroup", "utf8"));
  if (!own) return "no memory cgroup controller on this host";
  if (own.version === 1) {
    const dir = path.join("/sys/fs/cgroup/memory", name);
    fs.mkdirSync(dir);
    return { dir, limitFile: "memory.limit_in_bytes" };
  }
  const controllers = fs.readFileSync("/sys/fs/cgroup/cgroup.subtree_control", "utf8");
  if (!controllers.split(/\s+/).includes("memory")) return "the v2 root does not delegate the memory controller";
  const dir = path.join("/sys/fs/cgroup", name);
  fs.mkdirSync(dir);
  return { dir, limitFile: "memory.max" };
}

// The child: the ztunnel's own admission state, started without a limit
// (the cgroup default), then holding memory 16 MB at a time until it is
// under pressure (or has held 300 MB); prints its status after each step.
const CHILD = `
import { memoryAdmission } from ${JSON.stringify(new URL("../../ztunnel/proxy/memory-pressure.js", import.meta.url).href)};
memoryAdmission.start({ sampleMs: 60000 });
console.log(JSON.stringify({ step: "start", ...memoryAdmission.status() }));
const held = [];
while (!memoryAdmission.underPressure && held.length < 300 / 16) {
  held.push(Buffer.alloc(16 * 1024 * 1024, 1));
  memoryAdmission.setLimitMb(undefined);
}
console.log(JSON.stringify({ step: "held", heldMb: held.length * 16, ...memoryAdmission.status() }));
memoryAdmission.close();
`;

t.test(
  "without --memory-limit-mb, ztunnel takes 90% of its cgroup's limit and comes under pressure at it",
  { skip: needsRoot },
  async (t) => {
    const cg = makeCgroup(`ambit-t${randomBytes(4).toString("hex")}`);
    if (typeof cg === "string") {
      t.plan(0, cg); // reported as skipped, with the reason
      return;
    }
    t.teardown(() => fs.rmdirSync(cg.dir));
    fs.writeFileSync(path.join(cg.dir, cg.limitFile), String(LIMIT_MB * MB));

    // The shell joins the cgroup, then becomes node: the child is in it from its first allocation.
    const child = spawn(
      "sh",
      ["-c", `echo $$ > ${cg.dir}/cgroup.procs && exec "${process.execPath}" --input-type=module -e "$CHILD"`],
      { env: { ...process.env, CHILD, AMBIT_LOG_LEVEL: "silent" }, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    t.equal(code, 0, "the child ran to its end (not OOM-killed)");
    const [start, held] = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

    t.match(start, { pressured: false, source: "cgroup", limitMb: Math.round(LIMIT_MB * 0.9) }, "90% of the cgroup's limit");
    t.ok((start?.usedMb as number) > 10 && (start?.usedMb as number) < LIMIT_MB, `the cgroup's working set: ${start?.usedMb} MB`);
    t.match(held, { pressured: true, source: "cgroup" }, `under pressure after holding ${held?.heldMb} MB`);
    t.ok((held?.usedMb as number) >= LIMIT_MB * 0.9, `pressure at ${held?.usedMb} MB of ${LIMIT_MB} MB`);
  },
);

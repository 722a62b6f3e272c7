// ztunnel's V8 flags (ztunnel/launch-flags.ts) reach every launcher: the
// local supervisor's container (`ambit up`), the benchmark/soak harness, and
// the DaemonSet's NODE_OPTIONS; and this node accepts them there and sizes
// its heap by them.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";
import { parseAllDocuments } from "yaml";
import { ztunnelArgv } from "../../bench/peers/ambit.js";
import { meshLayout } from "../../local/network.js";
import { componentEnv, ztunnelContainer } from "../../local/supervisor-components.js";
import { meshPaths } from "../../local/supervisor-plan.js";
import { ZTUNNEL_NODE_FLAGS, ztunnelNodeFlags, ztunnelNodeOptions } from "../../ztunnel/launch-flags.js";

const flagsWithout = (env: NodeJS.ProcessEnv) => {
  const e = { ...env };
  delete e.AMBIT_ZTUNNEL_NODE_FLAGS;
  return e;
};

t.test("the flags: a small young generation and an old-space guard", async (t) => {
  t.ok(ZTUNNEL_NODE_FLAGS.includes("--max-semi-space-size=1"));
  t.ok(ZTUNNEL_NODE_FLAGS.some((f) => /^--max-old-space-size=\d+$/.test(f)));
  t.same(ztunnelNodeFlags({}), ZTUNNEL_NODE_FLAGS);
  t.same(
    ztunnelNodeFlags({ AMBIT_ZTUNNEL_NODE_FLAGS: "" }),
    [],
    "an empty override: none (the benchmark's 'before')",
  );
  t.same(ztunnelNodeFlags({ AMBIT_ZTUNNEL_NODE_FLAGS: " --a  --b=1 " }), ["--a", "--b=1"]);
});

t.test("ambit up: the ztunnel container runs node with the flags before the entry point", async (t) => {
  const saved = process.env.AMBIT_ZTUNNEL_NODE_FLAGS;
  delete process.env.AMBIT_ZTUNNEL_NODE_FLAGS;
  t.teardown(() => {
    if (saved !== undefined) process.env.AMBIT_ZTUNNEL_NODE_FLAGS = saved;
  });
  const cliMain = "/opt/ambit/cli/main.js";
  const c = ztunnelContainer(
    {
      cliMain,
      paths: meshPaths("lf1"),
      layout: meshLayout({ meshId: "lf1", nodes: ["node-1"] }),
      dir: "/yaml",
      env: componentEnv({}),
    },
    "node-1",
  );
  const argv = c.command ?? [];
  t.equal(argv[0], process.execPath);
  const main = argv.indexOf(cliMain);
  t.same(argv.slice(1, main), ZTUNNEL_NODE_FLAGS, "node options, then the entry point");
  t.equal(argv[main + 1], "ztunnel");
});

t.test("bench and soak: the ztunnel argv carries the flags before the entry point", async (t) => {
  const argv = ztunnelArgv("node-1", ["--node", "node-1"], flagsWithout(process.env));
  const main = argv.findIndex((a) => a.endsWith(path.join("cli", "main.js")));
  t.ok(main > 0);
  for (const f of ZTUNNEL_NODE_FLAGS) {
    const i = argv.indexOf(f);
    t.ok(i > 0 && i < main, `${f} is a node option`);
  }
  t.same(argv.slice(main + 1), ["ztunnel", "--node", "node-1"]);
  const none = ztunnelArgv("node-1", [], { ...flagsWithout(process.env), AMBIT_ZTUNNEL_NODE_FLAGS: "" });
  for (const f of ZTUNNEL_NODE_FLAGS) t.notOk(none.includes(f), "the override removes them");
});

t.test("the DaemonSet sets NODE_OPTIONS to the same flags", async (t) => {
  const text = readFileSync(path.join(process.cwd(), "manifests/install/ztunnel.yaml"), "utf8");
  const ds = parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string }; spec?: unknown })
    .find((d) => d.kind === "DaemonSet" && d.metadata?.name === "ambit-ztunnel") as
    | {
        spec: {
          template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } };
        };
      }
    | undefined;
  t.ok(ds, "the ztunnel DaemonSet");
  const zt = ds?.spec.template.spec.containers.find((c) => c.name === "ztunnel");
  const opts = zt?.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
  t.equal(opts, ztunnelNodeOptions());
});

t.test("this node accepts the flags in NODE_OPTIONS and sizes its heap by them", async (t) => {
  const limitMb = (nodeOptions: string) =>
    Number(
      execFileSync(
        process.execPath,
        ["-e", `console.log(require("node:v8").getHeapStatistics().heap_size_limit)`],
        { env: { ...process.env, NODE_OPTIONS: nodeOptions }, encoding: "utf8" },
      ).trim(),
    ) /
    (1024 * 1024);
  const oldFlag = ZTUNNEL_NODE_FLAGS.find((f) => f.startsWith("--max-old-space-size=")) ?? "";
  const oldMb = Number(oldFlag.split("=")[1]);
  // heap_size_limit is the old space plus the young generation's maximum (3 semi-spaces):
  // 3 MB with 1 MB semi-spaces, 48 MB with node's default 16 MB.
  const ours = limitMb(ztunnelNodeOptions());
  t.ok(
    ours >= oldMb && ours <= oldMb + 4,
    `heap limit ${ours} MB: old space ${oldMb} MB plus a small young generation`,
  );
  const defaultYoung = limitMb(oldFlag);
  t.ok(
    defaultYoung > ours + 16,
    `without the semi-space flag: ${defaultYoung} MB (the flag is what shrinks it)`,
  );
});

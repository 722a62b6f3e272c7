#!/usr/bin/env node
// The `ambit` command: one entry point, one module per subcommand, loaded on
// demand so that `ambit status` does not pay for loading the data path.

interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number | undefined> }>;
}

const commands: Record<string, Command> = {
  up: { summary: "run a local mesh from a directory of Kubernetes YAML", load: () => import("./commands/up.js") },
  down: { summary: "tear down the local mesh (namespaces, processes, rules)", load: () => import("./commands/down.js") },
  status: { summary: "nodes, pods, IPs, enrolment, identities of the local mesh", load: () => import("./commands/status.js") },
  exec: { summary: "run a command inside a pod of the local mesh: ambit exec NS/POD -- CMD", load: () => import("./commands/exec.js") },
  logs: { summary: "show a component's log: ambit logs controller|ztunnel-NODE|NS/POD", load: () => import("./commands/logs.js") },
  demo: { summary: "bring up examples/demo and show traffic flowing (npm start)", load: () => import("./commands/demo.js") },
  why: { summary: "explain a connection: ambit why NS/POD DST[:PORT] [--path P --method M]", load: () => import("./commands/why.js") },
  "config-dump": { summary: "what a proxy holds now: ambit config-dump ztunnel NODE | waypoint NS/NAME", load: () => import("./commands/config-dump.js") },
  dashboard: { summary: "print the URL of the mesh dashboard (service graph, workloads, config health)", load: () => import("./commands/dashboard.js") },
  upgrade: { summary: "replace every node's ztunnel without dropping a connection (zero-drop upgrade)", load: () => import("./commands/upgrade.js") },
  check: { summary: "preflight (kernel, tools, ports) and health of the local mesh", load: () => import("./commands/check.js") },
  controller: { summary: "run the controller (xDS + CA)", load: () => import("./commands/controller.js") },
  ztunnel: { summary: "run a node proxy", load: () => import("./commands/ztunnel.js") },
  waypoint: { summary: "run a waypoint (L7 proxy)", load: () => import("./commands/waypoint.js") },
};

function usage(): string {
  const lines = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`);
  return `usage: ambit <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun 'ambit <command> --help' for a command's options and an example.`;
}

async function main(): Promise<number> {
  const [name, ...rest] = process.argv.slice(2);
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`ambit: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const mod = await cmd.load();
  return (await mod.run(rest)) ?? 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`ambit: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.AMBIT_DEBUG && err instanceof Error) console.error(err.stack);
    process.exitCode = 1;
  },
);

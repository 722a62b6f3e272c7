// `ambit exec NS/POD -- CMD...`: runs a command inside a pod's network
// namespace (the mesh's own components too: ambit-system/ztunnel-node-1 is
// the node's namespace, ambit-system/controller the control plane's).
import { parseArgs } from "node:util";
import { AmbitError } from "../../core/errors/errors.js";
import { execInPod } from "../../local/runtime.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";

export const EXEC_HELP = `usage: ambit exec [--mesh-id ID] NS/POD -- CMD [ARGS...]

Runs CMD inside the network namespace of pod NS/POD of the local mesh, with
your terminal attached; exits with CMD's exit code. The file system is the
host's (pods are processes, not containers).

example:
  sudo ambit exec demo/client-7d9f8-abcde -- curl -s http://server.demo/
`;

export async function run(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const cmd = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: { "mesh-id": { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log(EXEC_HELP);
    return 0;
  }
  const [key, ...rest] = positionals;
  const command = [...rest, ...cmd];
  if (!key?.includes("/")) throw new AmbitError("CONFIG", "name the pod as NS/POD: ambit exec NS/POD -- CMD");
  if (command.length === 0) throw new AmbitError("CONFIG", "no command: ambit exec NS/POD -- CMD");
  return execInPod(resolveMeshId(values["mesh-id"]), key, command, { stdio: "inherit" });
}

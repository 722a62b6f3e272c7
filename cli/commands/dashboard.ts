// `ambit dashboard`: prints the URL of the dashboard the controller serves
// (read-only; its own port, default 15080). Opens nothing.
import { parseArgs } from "node:util";
import { DEFAULT_DASHBOARD_PORT } from "../../controller/dashboard/server.js";
import { AmbitError } from "../../core/errors/errors.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";

export const DASHBOARD_HELP = `usage: ambit dashboard [--mesh-id ID] [--port N]

Prints the URL of the mesh dashboard: the service graph (request rate, errors,
p99, bytes, mTLS and waypoints per edge), per-workload details, and config
health (NACKs, rejected objects with object and field). The controller serves
it read-only on its own port (AMBIT_DASHBOARD_PORT, default ${DEFAULT_DASHBOARD_PORT};
AMBIT_DASHBOARD_HOST, default 127.0.0.1). Nothing is opened for you.

example:
  ambit dashboard          # http://10.213.0.2:15080/
  chromium "$(ambit dashboard)"
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      "mesh-id": { type: "string" },
      port: { type: "string" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DASHBOARD_HELP);
    return 0;
  }
  const port = Number(values.port ?? process.env.AMBIT_DASHBOARD_PORT ?? DEFAULT_DASHBOARD_PORT);
  const meshId = resolveMeshId(values["mesh-id"]);
  const state = readState(meshId);
  // With a local mesh up, the controller lives at the control plane's address; otherwise on this host.
  const host = state ? state.layout.controlPlane.ip : (process.env.AMBIT_DASHBOARD_HOST ?? "127.0.0.1");
  if (!state && values["mesh-id"]) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' is up`);
  console.log(`http://${host}:${port}/`);
  return 0;
}

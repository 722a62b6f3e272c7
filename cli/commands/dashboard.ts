// `ambit dashboard`: prints the URL of the dashboard the controller serves
// (read-only; its own port, default 15080; with a local mesh, the host port
// the supervisor forwards to it). Opens nothing.
import { parseArgs } from "node:util";
import { DEFAULT_DASHBOARD_PORT } from "../../controller/dashboard/server.js";
import { AmbitError } from "../../core/errors/errors.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";

export const DASHBOARD_HELP = `usage: ambit dashboard [--mesh-id ID]

Prints the URL of the mesh dashboard: the service graph (request rate, errors
and L4 denials, p99, bytes, a lock on mTLS edges, a mark where a waypoint is
in the path; live), per-workload details (identity, node, enrolment,
certificate expiry, policies, routes, status conditions), and config health
(NACKs, rejected objects with object and field). Read-only.

With a local mesh up ('ambit up'), the controller serves it inside the
control plane and the supervisor forwards this host's 127.0.0.1:${DEFAULT_DASHBOARD_PORT}
to it (AMBIT_DASHBOARD_HOST / AMBIT_DASHBOARD_PORT given to 'ambit up' change
that; a port taken by another mesh falls back to a free one). A controller
started on its own ('ambit controller') serves it on AMBIT_DASHBOARD_HOST:PORT
(default 127.0.0.1:${DEFAULT_DASHBOARD_PORT}). Nothing is opened for you.

example:
  ambit dashboard          # http://127.0.0.1:${DEFAULT_DASHBOARD_PORT}/
  chromium "$(ambit dashboard)"
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      "mesh-id": { type: "string" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DASHBOARD_HELP);
    return 0;
  }
  const meshId = resolveMeshId(values["mesh-id"]);
  const state = readState(meshId);
  if (state) {
    const url = state.extra?.dashboard;
    if (typeof url !== "string")
      throw new AmbitError(
        "LOCAL_STATE",
        `mesh '${meshId}' has no dashboard on this host (its supervisor could not listen; see 'ambit logs supervisor')`,
      );
    console.log(url);
    return 0;
  }
  if (values["mesh-id"]) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' is up`);
  // No local mesh: a controller run on this host serves it directly.
  const host = process.env.AMBIT_DASHBOARD_HOST ?? "127.0.0.1";
  const port = Number(process.env.AMBIT_DASHBOARD_PORT ?? DEFAULT_DASHBOARD_PORT);
  console.log(`http://${host.includes(":") ? `[${host}]` : host}:${port}/`);
  return 0;
}

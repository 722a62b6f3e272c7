// `ambit why SRC DST[:PORT]`: what the data plane does with a connection
// (and request) from a pod, explained from what the controller and the
// proxies hold, with the data plane's own decision functions.
import { parseArgs } from "node:util";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import { collectViews, localTargets } from "../why/collect.js";
import { explainConnection, WhyError, type WhyQuery } from "../why/engine.js";
import { renderWhy } from "../why/render.js";

export const WHY_HELP = `usage: ambit why SRC DST[:PORT] [--path P] [--method M] [--header K=V]... [--json] [--mesh-id ID]

Explains a connection from pod SRC (NS/POD) to DST (a Service name, NAME.NS,
NS/NAME, a VIP or a pod IP): whether SRC is captured and by which ztunnel,
with which identity; which Service, endpoint or waypoint the source ztunnel
picks; which route and filters the waypoint applies (with --path/--method);
which authorization policy and rule allows or denies it at the destination
(or the default), and the mTLS mode. Exits 0 when allowed, 1 when denied or
refused, 2 on bad input, 3 when it cannot be decided.

example:
  ambit why shop/client-0 web:80
  ambit why shop/client-0 10.96.0.20:80 --path /admin --method POST --json
`;

/** DST[:PORT], with IPv6 as [addr]:port. */
export function splitDst(s: string): { dst: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { dst: v6[1] as string, ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const i = s.lastIndexOf(":");
  if (i > 0 && s.indexOf(":") === i && /^\d+$/.test(s.slice(i + 1)))
    return { dst: s.slice(0, i), port: Number(s.slice(i + 1)) };
  return { dst: s };
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      path: { type: "string" },
      method: { type: "string" },
      header: { type: "string", multiple: true },
      json: { type: "boolean" },
      "mesh-id": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(WHY_HELP);
    return 0;
  }
  if (positionals.length !== 2) {
    console.error(WHY_HELP);
    return 2;
  }
  const { dst, port } = splitDst(positionals[1] as string);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf("=");
    if (i <= 0) {
      console.error(`ambit why: --header '${h}' must be NAME=VALUE`);
      return 2;
    }
    headers[h.slice(0, i)] = h.slice(i + 1);
  }
  const q: WhyQuery = {
    src: positionals[0] as string,
    dst,
    ...(port !== undefined ? { port } : {}),
    ...(values.path ? { path: values.path } : {}),
    ...(values.method ? { method: values.method.toUpperCase() } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
  };
  const views = await collectViews(localTargets(resolveMeshId(values["mesh-id"])));
  try {
    const a = explainConnection(views, q);
    console.log(values.json ? JSON.stringify(a, null, 2) : renderWhy(a));
    return a.verdict === "allowed" ? 0 : a.verdict === "unknown" ? 3 : 1;
  } catch (e) {
    if (e instanceof WhyError) {
      console.error(`ambit why: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

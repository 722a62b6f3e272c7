// `ambit logs COMPONENT [-f]`: a component's or pod's log from the local
// mesh's state directory.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { AmbitError } from "../../core/errors/errors.js";
import { readState } from "../../local/state.js";
import { followFile, type LogSource, logSources } from "../../local/supervisor-logs.js";
import { meshPaths, resolveMeshId } from "../../local/supervisor-plan.js";
import { untilSignal } from "./up.js";

export const LOGS_HELP = `usage: ambit logs [--mesh-id ID] [-f] COMPONENT

COMPONENT is controller, ztunnel-NODE, supervisor, NS/POD (all containers)
or NS/POD/CONTAINER. -f keeps following the log until Ctrl-C.

example:
  ambit logs ztunnel-node-2 -f
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "mesh-id": { type: "string" },
      follow: { type: "boolean", short: "f" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(LOGS_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new AmbitError("CONFIG", "name one component: ambit logs controller|ztunnel-NODE|NS/POD");
  const meshId = resolveMeshId(values["mesh-id"]);
  if (!readState(meshId)) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' is up`);
  const sources: LogSource[] = logSources(meshPaths(meshId), positionals[0]!);
  const many = sources.length > 1;
  const print = (s: LogSource) => (line: string) =>
    process.stdout.write(many ? `[${s.label}] ${line}\n` : `${line}\n`);
  if (!values.follow) {
    for (const s of sources) {
      let text = "";
      try {
        text = fs.readFileSync(s.file, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n")) if (line !== "") print(s)(line);
    }
    return 0;
  }
  const followers = sources.map((s) => followFile(s.file, print(s)));
  return untilSignal(async () => {
    for (const f of followers) f.close();
  }, "");
}

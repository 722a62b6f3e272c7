// `ambit upgrade`: replaces every node's ztunnel in the local mesh with a new
// process without dropping a connection (local/supervisor-upgrade.ts does
// it inside the mesh's supervisor; this command asks for it and follows it).
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { parseArgs } from "node:util";
import { AmbitError } from "../../core/errors/errors.js";
import { alive } from "../../local/network.js";
import { readState } from "../../local/state.js";
import { resolveMeshId } from "../../local/supervisor-plan.js";
import {
  type UpgradeRequest,
  type UpgradeStatus,
  upgradeRequestFile,
} from "../../local/supervisor-upgrade.js";

export const UPGRADE_HELP = `usage: ambit upgrade [--drain-seconds N] [--wait] [--json] [--mesh-id ID]

Replaces every node's ztunnel with a new process, one node at a time, without
dropping a connection: the new ztunnel opens its listeners inside each
enrolled pod alongside the old one's (SO_REUSEPORT) and becomes ready; then
the old one stops accepting (connections already queued move to the new
one), sends GOAWAY on its HBONE sessions so peers open new ones, and carries
its established connections until they end, up to the drain time; then it
exits. 'ambit status' shows both while the old one drains.

options:
  --drain-seconds N   how long an old ztunnel may drain (default 600, at most 600)
  --wait              return once every old ztunnel has exited, not at the handover
  --json              print the final upgrade status as JSON

example:
  sudo ambit upgrade
  sudo ambit upgrade --drain-seconds 30 --wait
`;

const MAX_DRAIN_SECONDS = 600;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "mesh-id": { type: "string" },
      "drain-seconds": { type: "string" },
      wait: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(UPGRADE_HELP);
    return 0;
  }
  const drainSeconds = Number(values["drain-seconds"] ?? MAX_DRAIN_SECONDS);
  if (!Number.isInteger(drainSeconds) || drainSeconds < 1 || drainSeconds > MAX_DRAIN_SECONDS) {
    throw new AmbitError(
      "CONFIG",
      `--drain-seconds: expected a whole number from 1 to ${MAX_DRAIN_SECONDS}, got '${values["drain-seconds"]}'`,
    );
  }
  const meshId = resolveMeshId(values["mesh-id"]);
  const state = readState(meshId);
  if (!state) throw new AmbitError("LOCAL_STATE", `no local mesh '${meshId}' is up (run 'ambit up DIR')`);
  const pid = typeof state.extra?.supervisorPid === "number" ? state.extra.supervisorPid : state.ownerPid;
  if (!pid || !alive(pid)) {
    throw new AmbitError(
      "LOCAL_STATE",
      `the supervisor of mesh '${meshId}' is not running (pid ${pid ?? "?"})`,
    );
  }
  const req: UpgradeRequest = { id: randomBytes(4).toString("hex"), drainSeconds };
  fs.writeFileSync(upgradeRequestFile(meshId), `${JSON.stringify(req)}\n`);
  process.kill(pid, "SIGUSR2");

  // Follow the supervisor's progress in the state file.
  const wantDone = Boolean(values.wait);
  const handoverDeadline = Date.now() + 180_000;
  const finalDeadline = Date.now() + 180_000 + drainSeconds * 1000;
  const said = new Set<string>();
  for (;;) {
    const st = readState(meshId)?.extra?.upgrade as UpgradeStatus | undefined;
    if (st?.id === req.id) {
      if (!values.json) {
        for (const [node, n] of Object.entries(st.nodes)) {
          const line = lineFor(node, n, st.drainSeconds);
          if (line && !said.has(line)) {
            said.add(line);
            console.log(line);
          }
        }
      }
      if (st.phase === "failed") {
        if (values.json) console.log(JSON.stringify(st, null, 2));
        throw new AmbitError("LOCAL_STATE", `upgrade failed: ${st.message ?? "see 'ambit logs'"}`);
      }
      if (st.phase === "done" || (st.phase === "handed-over" && !wantDone)) {
        if (values.json) console.log(JSON.stringify(st, null, 2));
        else if (st.phase === "handed-over")
          console.log(
            `every node runs its new ztunnel; the old ones drain for up to ${st.drainSeconds} s ('ambit status' shows them)`,
          );
        else console.log("upgrade done: every old ztunnel has exited");
        return 0;
      }
    }
    if (Date.now() > (st?.phase === "handed-over" ? finalDeadline : handoverDeadline)) {
      throw new AmbitError(
        "LOCAL_STATE",
        `upgrade ${req.id}: no progress in time (see 'ambit logs ztunnel-NODE')`,
      );
    }
    if (!alive(pid)) throw new AmbitError("LOCAL_STATE", "the supervisor exited during the upgrade");
    await new Promise((r) => setTimeout(r, 200)); // the state file has no change event
  }
}

function lineFor(node: string, n: UpgradeStatus["nodes"][string], drainSeconds: number): string | undefined {
  switch (n.phase) {
    case "starting":
      return `${node}: starting ${n.to} alongside ${n.from}`;
    case "draining":
      return `${node}: ${n.to} serves; ${n.from} drains (up to ${drainSeconds} s)`;
    case "drained":
      return `${node}: ${n.from} drained and exited`;
    case "stopped":
      return `${node}: ${n.from} stopped at the drain deadline`;
    case "failed":
      return `${node}: failed${n.message ? `: ${n.message}` : ""}`;
    default:
      return undefined;
  }
}

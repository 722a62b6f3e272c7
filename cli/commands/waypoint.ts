// `ambit waypoint`: the L7 proxy of one Gateway (class ambit-waypoint) as a process.
import { runWaypoint } from "../../waypoint/app.js";
import { parseWaypointConfig, WAYPOINT_HELP } from "../../waypoint/config.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseWaypointConfig(argv);
  if (cfg === "help") {
    console.log(WAYPOINT_HELP);
    return 0;
  }
  await runWaypoint(cfg);
  return 0;
}

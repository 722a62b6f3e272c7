// `ambit waypoint`: the L7 proxy of one Gateway (class ambit-waypoint) as a process.
import { parseWaypointConfig, WAYPOINT_HELP } from "../../waypoint/config.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseWaypointConfig(argv);
  if (cfg === "help") {
    console.log(WAYPOINT_HELP);
    return 0;
  }
  // Loaded after the flags: --help and a bad flag answer at once, without loading the data path.
  const { runWaypoint } = await import("../../waypoint/app.js");
  await runWaypoint(cfg);
  return 0;
}

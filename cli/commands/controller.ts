// `ambit controller`: the control plane as a process.
import { ControllerApp } from "../../controller/app.js";
import { CONTROLLER_HELP, parseControllerConfig } from "../../controller/config.js";
import { runUntilSignal } from "../process-lifecycle.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseControllerConfig(argv);
  if (cfg === "help") {
    console.log(CONTROLLER_HELP);
    return 0;
  }
  const app = new ControllerApp(cfg);
  await app.start();
  return runUntilSignal(() => app.close());
}

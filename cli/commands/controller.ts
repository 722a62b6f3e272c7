// `ambit controller`: the control plane as a process.
import { CONTROLLER_HELP, parseControllerConfig } from "../../controller/config.js";
import { runUntilSignal } from "../process-lifecycle.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseControllerConfig(argv);
  if (cfg === "help") {
    console.log(CONTROLLER_HELP);
    return 0;
  }
  // Loaded after the flags: --help and a bad flag answer at once, without loading the data path.
  const { ControllerApp } = await import("../../controller/app.js");
  const app = new ControllerApp(cfg);
  await app.start();
  return runUntilSignal(() => app.close());
}

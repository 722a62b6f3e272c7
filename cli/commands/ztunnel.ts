// `ambit ztunnel`: the node proxy as a process.
import { ZtunnelApp } from "../../ztunnel/app.js";
import { parseZtunnelConfig, ZTUNNEL_HELP } from "../../ztunnel/config.js";
import { runUntilSignal } from "../process-lifecycle.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseZtunnelConfig(argv);
  if (cfg === "help") {
    console.log(ZTUNNEL_HELP);
    return 0;
  }
  const app = new ZtunnelApp(cfg);
  await app.start();
  return runUntilSignal(() => app.close());
}

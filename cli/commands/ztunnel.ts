// `ambit ztunnel`: the node proxy as a process.
import { parseZtunnelConfig, ZTUNNEL_HELP } from "../../ztunnel/config.js";
import { runUntilSignal } from "../process-lifecycle.js";

export async function run(argv: string[]): Promise<number> {
  const cfg = parseZtunnelConfig(argv);
  if (cfg === "help") {
    console.log(ZTUNNEL_HELP);
    return 0;
  }
  // Loaded after the flags: --help and a bad flag answer at once, without loading the data path.
  const { ZtunnelApp } = await import("../../ztunnel/app.js");
  const app = new ZtunnelApp(cfg);
  await app.start();
  return runUntilSignal(() => app.close());
}

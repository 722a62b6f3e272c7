// ztunnel's start-up step on a cluster node: install ambit-cni (cni/install.ts)
// and keep it chained. The cluster's own network plugin may write its
// configuration after us, or rewrite it (dropping our entry): the check runs
// again every few seconds and re-adds it. Taken out again only on uninstall
// (the ztunnel's exit decides, see app.ts): an upgrade keeps it in place, and
// a plugin whose agent is briefly absent lets pods start (fail open).
import {
  type CniInstallOptions,
  chainIntoPrimaryConfig,
  installCniBinary,
  pluginConf,
  uninstallCni,
} from "../../cni/install.js";
import type { Logger } from "../../core/telemetry/logger.js";
import { logger } from "../../core/telemetry/logger.js";

export interface CniInstallerOptions extends CniInstallOptions {
  /** How often the chain is checked (default 2000 ms). */
  recheckMs?: number;
  log?: Logger;
}

export class CniInstaller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private chainedInto: string | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: CniInstallerOptions) {
    this.log = opts.log ?? logger("ztunnel.cni-install");
  }

  /** The configuration file holding ambit-cni, once chained. */
  get configFile(): string | undefined {
    return this.chainedInto;
  }

  async start(): Promise<void> {
    const wrapper = await installCniBinary(this.opts);
    this.log.info({ wrapper }, "CNI plugin installed");
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.recheckMs ?? 2000);
    this.timer.unref();
  }

  /** Chains the plugin if it is not (idempotent); one check at a time. */
  check(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        const r = await chainIntoPrimaryConfig(this.opts.confDir, pluginConf(this.opts));
        if (!r) {
          if (this.chainedInto !== undefined || this.timer === undefined)
            this.log.warn(
              { dir: this.opts.confDir },
              "no CNI configuration on this node yet; waiting for it",
            );
          this.chainedInto = undefined;
          return;
        }
        if (r.changed || this.chainedInto !== r.file) this.log.info({ file: r.file }, "ambit-cni chained");
        this.chainedInto = r.file;
      } catch (e) {
        this.log.error({ err: (e as Error).message }, "chaining ambit-cni failed");
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops checking; with `uninstall`, takes ambit-cni out of the node's configuration and removes it. */
  async close(opts: { uninstall?: boolean } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    if (opts.uninstall) {
      const edited = await uninstallCni({ binDir: this.opts.binDir, confDir: this.opts.confDir });
      this.log.info({ edited }, "ambit-cni uninstalled");
    }
  }
}

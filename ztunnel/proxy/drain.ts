// Drain bookkeeping shared by the inbound proxies: which connections are
// open (being set up, or spliced), a promise for "none left" that close()
// awaits during an upgrade, and a reset of what is left at the drain
// deadline. A connection counts from the moment its setup begins, so a
// draining ztunnel never exits under a connection that is still dialling
// its application.
import type { Bridge } from "../../core/hbone/bridge.js";

/** One connection's place in the tracker: `opened` once spliced, `done` exactly once at the end (idempotent). */
export interface DrainSlot {
  opened(bridge: Bridge): void;
  done(): void;
}

export class ConnectionDrain {
  private readonly bridges = new Set<Bridge>();
  private settingUp = 0;
  private idleWaiters: (() => void)[] = [];

  /** Connections being set up or spliced. */
  get count(): number {
    return this.bridges.size + this.settingUp;
  }

  /**
   * A connection starts; it is counted until its slot's `done()`. A bridge
   * whose end callback runs before `opened` (a synchronous failure) is fine:
   * `opened` after `done` is ignored.
   */
  begin(): DrainSlot {
    this.settingUp++;
    let state: "setup" | "open" | "done" = "setup";
    let bridge: Bridge | undefined;
    return {
      opened: (b) => {
        if (state !== "setup") return;
        state = "open";
        this.settingUp--;
        bridge = b;
        this.bridges.add(b);
      },
      done: () => {
        if (state === "done") return;
        if (state === "setup") this.settingUp--;
        else if (bridge) this.bridges.delete(bridge);
        state = "done";
        if (this.count === 0) for (const r of this.idleWaiters.splice(0)) r();
      },
    };
  }

  /** Resolves once no connection is open (their accounting included). */
  whenIdle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Resets every spliced connection (the caller's drain deadline passed). */
  abortAll(): void {
    for (const b of [...this.bridges]) b.abort();
  }
}

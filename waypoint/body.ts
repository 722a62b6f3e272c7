// A request body that can be replayed: the current attempt streams it (with
// backpressure), and a copy is kept up to a limit so that retries and mirrors
// can send it again. Past the limit the body is no longer replayable: retries
// stop and mirrors are dropped. Used only when a route retries or mirrors;
// otherwise the body is piped straight through.
import type { Readable, Writable } from "node:stream";

export const REPLAY_LIMIT = 1 << 20;

export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  ended = false;
  overflow = false;
  bytes = 0;
  private primary: Writable | undefined;
  private readonly side = new Set<Writable>();

  constructor(
    private readonly src: Readable,
    private readonly limit = REPLAY_LIMIT,
  ) {
    src.on("data", (c: Buffer) => this.onData(c));
    src.on("end", () => {
      this.ended = true;
      this.primary?.end();
      for (const s of this.side) s.end();
    });
  }

  private onData(c: Buffer): void {
    this.bytes += c.length;
    if (!this.overflow) {
      this.size += c.length;
      if (this.size > this.limit && this.primary) {
        // The primary already has everything kept so far; stop keeping.
        this.overflow = true;
        this.chunks.length = 0;
        for (const s of this.side) s.destroy();
        this.side.clear();
      } else this.chunks.push(c);
      // Nobody to hand a large body to yet: wait for the first attempt.
      if (!this.primary && this.size > this.limit) this.src.pause();
    }
    for (const s of this.side) {
      if (s.writableLength > this.limit) s.destroy();
      else s.write(c);
    }
    if (this.primary && !this.primary.write(c)) {
      this.src.pause();
      this.primary.once("drain", () => this.src.resume());
    }
  }

  get replayable(): boolean {
    return !this.overflow;
  }

  /** The sink of the current attempt: gets what has arrived so far, then the rest. */
  attach(sink: Writable): void {
    this.primary = sink;
    for (const c of this.chunks) sink.write(c);
    if (this.ended) sink.end();
    else this.src.resume();
  }

  detach(sink: Writable): void {
    if (this.primary === sink) {
      this.primary = undefined;
      this.src.resume();
    }
  }

  /** A sink that never slows the primary (a mirror): fed without backpressure, dropped if it falls too far behind. */
  attachSide(sink: Writable): void {
    if (this.overflow) {
      sink.destroy();
      return;
    }
    for (const c of this.chunks) sink.write(c);
    if (this.ended) sink.end();
    else {
      this.side.add(sink);
      sink.once("close", () => this.side.delete(sink));
    }
  }
}

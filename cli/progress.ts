// Progress of a long command on stderr. On a terminal: one status line,
// redrawn in place (spinner, what is happening, seconds elapsed), with
// lasting lines (phases, warnings) printed above it. Not on a terminal (a
// pipe, a CI log): no escape codes and no spinner, lasting lines only, so
// logs stay readable and diffable.
//
//   const p = new Progress();
//   p.line("starting the controller");   // lasting
//   p.status("pod shop/web ready");       // transient (terminal only)
//   p.done();                             // clears the status line
const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force terminal behaviour on or off (default: the stream's isTTY; AMBIT_PROGRESS=plain forces off). */
  tty?: boolean;
  /** Prefix of lasting lines ("  " for `ambit up`'s indented log). */
  indent?: string;
  /** Clock, for tests. */
  now?: () => number;
}

export class Progress {
  readonly tty: boolean;
  private readonly stream: NonNullable<ProgressOptions["stream"]>;
  private readonly indent: string;
  private readonly now: () => number;
  private readonly started: number;
  private text = "";
  private frame = 0;
  private shown = false;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? (this.stream.isTTY === true && process.env.AMBIT_PROGRESS !== "plain");
    this.indent = opts.indent ?? "";
    this.now = opts.now ?? Date.now;
    this.started = this.now();
  }

  /** A line that stays (both modes). */
  line(text: string): void {
    this.clear();
    this.stream.write(`${this.indent}${text}\n`);
    this.draw();
  }

  /** What is happening now: the status line on a terminal, nothing otherwise. */
  status(text: string): void {
    if (!this.tty || this.finished) return;
    this.text = text;
    if (!this.timer) {
      // Redraws for the spinner and the seconds; never keeps the process alive.
      this.timer = setInterval(() => {
        this.frame++;
        this.draw();
      }, 120);
      this.timer.unref();
    }
    this.draw();
  }

  /** Hides the status line until the next status() (before printing to stdout). */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
    this.text = "";
  }

  /** Clears the status line for good (later status() calls are ignored; line() still prints). */
  done(): void {
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
    this.text = "";
  }

  /** The status line as drawn (pure, for tests). */
  render(): string {
    const secs = Math.floor((this.now() - this.started) / 1000);
    const frame = FRAMES[this.frame % FRAMES.length];
    const suffix = ` (${secs}s)`;
    // Cut the text, not the seconds, to stay on one terminal line.
    const room = Math.max(10, (this.stream.columns || 100) - 1 - 2 - suffix.length);
    const text = this.text.length > room ? `${this.text.slice(0, room - 1)}…` : this.text;
    return `${frame} ${text}${suffix}`;
  }

  private draw(): void {
    if (!this.tty || !this.text) return;
    this.stream.write(`\r\x1b[2K${this.render()}`);
    this.shown = true;
  }

  private clear(): void {
    if (!this.tty || !this.shown) return;
    this.stream.write("\r\x1b[2K");
    this.shown = false;
  }
}

/**
 * `ambit up`'s supervisor lines through a Progress: phases, warnings and
 * failures stay (components' "controller ready", "ztunnel-node-1 ready" are
 * phases too); on a terminal the per-pod lines ("pod X on node-1 at IP",
 * "pod X ready") only update the status line with counts, so the phases stay
 * readable. Not on a terminal every line stays, as
 * a plain log.
 */
export function meshProgress(p: Progress): (line: string) => void {
  const started = new Set<string>();
  const ready = new Set<string>();
  return (line) => {
    const placed = /^pod (\S+) on \S+ at \S+$/.exec(line);
    const up = /^pod (\S+) ready$/.exec(line);
    if (!p.tty || (!placed && !up)) {
      p.line(line);
      return;
    }
    if (placed) started.add(placed[1]!);
    if (up) ready.add(up[1]!);
    p.status(`pods ${ready.size}/${Math.max(started.size, ready.size)} ready: ${line}`);
  };
}

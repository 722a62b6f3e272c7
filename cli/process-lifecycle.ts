// How every long-running ambit process ends: on SIGTERM or SIGINT it drains
// (the component's close()), then exits; a second signal exits at once.
export function runUntilSignal(close: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) process.exit(1);
      stopping = true;
      process.stderr.write(`ambit: ${sig}: draining\n`);
      close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

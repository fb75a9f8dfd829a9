/**
 * Stop functions of everything started, run newest first, so that the end of a run, or
 * Ctrl-C in the middle, stops what is running and removes temporary directories. A run keeps
 * one per scenario (scenarios run side by side and end at different times).
 */
export class CleanupStack {
  private readonly stops: Array<() => Promise<void>> = [];

  /** Registers a stop function; `run` calls it at most once. */
  add(stop: () => Promise<void>): void {
    this.stops.push(stop);
  }

  /** Runs every registered stop function, newest first, and forgets them; never throws. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.stops.length > 0) {
      const stop = this.stops.pop();
      try {
        await stop?.();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0)
      process.stderr.write(`cleanup: ${errors.length} step(s) failed: ${String(errors[0])}\n`);
  }
}

/**
 * On the first SIGINT or SIGTERM: prints `message`, awaits `stop`, then exits with `exitCode`.
 * Returns whether that has begun, so the caller starts nothing new and leaves the exit to it.
 *
 * @example
 * const interrupted = exitOnSignal('stopping...', () => cleanup.run(), 130);
 * if (interrupted()) return;
 */
export function exitOnSignal(
  message: string,
  stop: () => Promise<unknown>,
  exitCode: number,
): () => boolean {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: ${message}\n`);
    void stop().then(() => process.exit(exitCode));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => interrupted;
}

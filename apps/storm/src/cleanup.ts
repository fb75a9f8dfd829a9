/**
 * Stop functions of everything started, run newest first. One instance per process, created
 * by the CLI, so that Ctrl-C stops what is running and removes temporary directories.
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

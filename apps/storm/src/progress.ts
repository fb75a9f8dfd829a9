import type { Progress } from './run-scenario.ts';

/**
 * One line per scenario: rewritten in place on a terminal, printed as plain lines (at most one
 * per scenario every few seconds) when the output is a pipe or a file.
 */
export class ProgressDisplay {
  private readonly lines = new Map<string, string>();
  private drawn = 0;
  private readonly lastPlain = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly tty = Boolean(out.isTTY),
  ) {}

  update(progress: Progress): void {
    const { counters } = progress;
    const line =
      `${progress.scenario.padEnd(24)} ${progress.phase.padEnd(8)} ${progress.elapsedSeconds.toFixed(0).padStart(3)}s` +
      `  logins ${String(counters.logins).padStart(5)}  403s ${String(counters.forbidden).padStart(5)}` +
      `  graded ${progress.graded}/${progress.submitted}` +
      `  deaths ${progress.connectionDeaths}  restarts ${progress.restarts}`;
    this.lines.set(progress.scenario, line);
    if (this.tty) {
      this.redraw();
      return;
    }
    const now = Date.now();
    const last = this.lastPlain.get(progress.scenario) ?? 0;
    if (progress.phase === 'done' || progress.phase === 'starting' || now - last >= 3000) {
      this.lastPlain.set(progress.scenario, now);
      this.out.write(`${line}\n`);
    }
  }

  private redraw() {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F`);
    for (const line of this.lines.values()) this.out.write(`\x1b[2K${line}\n`);
    this.drawn = this.lines.size;
  }
}

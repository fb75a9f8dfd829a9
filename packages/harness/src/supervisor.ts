import type { ManagedProcess } from './process.ts';

/** The clock and timers a supervisor uses; tests pass their own to see and cancel restarts. */
export interface SupervisorTimers {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's own clock and timers. */
export const REAL_TIMERS: SupervisorTimers = {
  now: () => Date.now(),
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** How a process that exits on its own is restarted. */
export interface SuperviseOptions {
  /** Wait before the first restart of a crash loop (Kubernetes: 10 s). */
  backoffBaseMs: number;
  /** Longest wait between restarts (Kubernetes: 300 s). */
  backoffMaxMs: number;
  /** A run at least this long resets the backoff to the base. Default `2 * backoffMaxMs`. */
  resetAfterMs?: number;
  timers?: SupervisorTimers;
}

/**
 * The restart delay of Kubernetes' CrashLoopBackOff: the base, doubled at each exit in a row,
 * capped; an incarnation that ran `resetAfterMs` (Kubernetes: 10 minutes, twice the 5-minute
 * cap) before it exited starts the sequence again.
 *
 * @example
 * const backoff = new CrashLoopBackoff({ backoffBaseMs: 10_000, backoffMaxMs: 300_000 });
 * backoff.nextDelayMs(1_000); // 10_000
 * backoff.nextDelayMs(1_000); // 20_000
 * backoff.nextDelayMs(600_000); // 10_000 again: it ran cleanly for 10 minutes
 */
export class CrashLoopBackoff {
  private exitsInARow = 0;
  private readonly resetAfterMs: number;

  constructor(private readonly options: Omit<SuperviseOptions, 'timers'>) {
    if (!(options.backoffBaseMs >= 0) || !(options.backoffMaxMs >= options.backoffBaseMs)) {
      throw new RangeError('backoff needs 0 <= backoffBaseMs <= backoffMaxMs');
    }
    this.resetAfterMs = options.resetAfterMs ?? 2 * options.backoffMaxMs;
  }

  /** The wait before restarting an incarnation that exited after running `ranMs`. */
  nextDelayMs(ranMs: number): number {
    if (ranMs >= this.resetAfterMs) this.exitsInARow = 0;
    this.exitsInARow += 1;
    const doubled = this.options.backoffBaseMs * 2 ** Math.min(this.exitsInARow - 1, 30);
    return Math.min(this.options.backoffMaxMs, doubled);
  }
}

/** One incarnation of a supervised process, as its launcher started it. */
export interface Launched<T> {
  process: ManagedProcess;
  /** Resolves when the incarnation is ready; rejects when it exits (or hangs) first. */
  ready: Promise<T>;
  /**
   * Asked when an incarnation that `start` or `replace` waits for ended before it was ready:
   * true when it died of something a restart may cure (restart it), false when it could not
   * start at all (fail fast).
   */
  diedAtRunTime(): boolean;
}

export interface SupervisedProcessOptions<T> {
  /** Starts one incarnation (synchronously: the process exists when it returns). */
  launch: () => Launched<T>;
  /** Restart on exits the caller did not cause; absent: never restarted. */
  supervise?: SuperviseOptions | undefined;
  /** Each incarnation's ready value, in order (an older incarnation's never comes late). */
  onReady?: (value: T) => void;
}

/**
 * One process kept running the way Kubernetes keeps a container running: when it exits on its
 * own (not through `kill`, `replace` or `stop`), a new incarnation starts after a
 * {@link CrashLoopBackoff} delay, whatever the exit code, as `restartPolicy: Always` and compose
 * `restart: unless-stopped` do.
 *
 * @example
 * const slot = new SupervisedProcess({ launch, supervise: { backoffBaseMs: 10_000, backoffMaxMs: 300_000 } });
 * await slot.start();
 * ...
 * await slot.stop();
 */
export class SupervisedProcess<T> {
  private current: Launched<T> | undefined;
  private startedAt = 0;
  private pending: unknown;
  private stopped = false;
  private restartCount = 0;
  private readonly endedByCaller = new WeakSet<ManagedProcess>();
  private readonly awaited = new WeakSet<Launched<T>>();
  private readonly backoff: CrashLoopBackoff | null;
  private readonly timers: SupervisorTimers;

  constructor(private readonly options: SupervisedProcessOptions<T>) {
    this.backoff = options.supervise ? new CrashLoopBackoff(options.supervise) : null;
    this.timers = options.supervise?.timers ?? REAL_TIMERS;
  }

  /** The current incarnation's process. */
  get process(): ManagedProcess {
    if (!this.current) throw new Error('SupervisedProcess.start() must run first');
    return this.current.process;
  }

  /** Incarnations the supervisor started after an exit of their own (not the first, not `replace`). */
  get restarts(): number {
    return this.restartCount;
  }

  /**
   * Starts the first incarnation and resolves with its ready value, or with undefined when it
   * died before it was ready and a restart is scheduled. Throws (and leaves nothing running)
   * when it could not start, or when nothing supervises it.
   */
  start(): Promise<T | undefined> {
    return this.awaitReady(this.launch());
  }

  /** Sends `signal` to the current incarnation and waits for it to exit; no restart follows. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    this.cancelPending();
    const running = this.process;
    this.endedByCaller.add(running);
    running.child.kill(signal);
    await running.exited;
  }

  /** Stops the current incarnation (if it still runs) and starts a new one now, unless stopped. */
  async replace(graceMs = 15_000): Promise<T | undefined> {
    this.cancelPending();
    const running = this.process;
    this.endedByCaller.add(running);
    await running.stop('SIGTERM', graceMs);
    if (this.stopped) return undefined; // stopped for good while the old one was stopping
    return this.awaitReady(this.launch());
  }

  /** Stops the current incarnation and any pending restart, for good. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
    this.stopped = true;
    this.cancelPending();
    if (!this.current) return;
    this.endedByCaller.add(this.current.process);
    await this.current.process.stop(signal, graceMs);
  }

  private launch(): Launched<T> {
    const launched = this.options.launch();
    this.current = launched;
    this.startedAt = this.timers.now();
    launched.ready.then(
      (value) => {
        if (this.current === launched) this.options.onReady?.(value);
      },
      () => undefined, // awaitReady or the exit handler deals with it
    );
    void launched.process.exited.then(() => this.onExit(launched));
    return launched;
  }

  private async awaitReady(launched: Launched<T>): Promise<T | undefined> {
    // Until it is ready, this incarnation's exit is decided here, not by onExit.
    this.awaited.add(launched);
    try {
      return await launched.ready;
    } catch (error) {
      const ownExit = !this.endedByCaller.has(launched.process);
      if (this.backoff && !this.stopped && ownExit && launched.diedAtRunTime()) {
        await launched.process.exited;
        this.scheduleRestart(launched);
        return undefined;
      }
      this.stopped = true;
      this.cancelPending();
      await launched.process.stop('SIGKILL');
      throw error;
    } finally {
      this.awaited.delete(launched);
    }
  }

  private onExit(launched: Launched<T>) {
    if (this.awaited.has(launched) || this.endedByCaller.has(launched.process)) return;
    this.scheduleRestart(launched);
  }

  private scheduleRestart(launched: Launched<T>) {
    if (!this.backoff || this.stopped || this.current !== launched) return;
    const delayMs = this.backoff.nextDelayMs(this.timers.now() - this.startedAt);
    this.pending = this.timers.setTimeout(() => {
      this.pending = undefined;
      if (this.stopped) return;
      this.restartCount += 1;
      this.launch();
    }, delayMs);
  }

  private cancelPending() {
    if (this.pending === undefined) return;
    this.timers.clearTimeout(this.pending);
    this.pending = undefined;
  }
}

import * as FakeTimers from '@sinonjs/fake-timers';

// Taken before any clock is installed: the simulator's one way to let real work settle.
const realSetImmediate = globalThis.setImmediate;

/** Resolves on the next real turn of the event loop, once every promise job queued has run. */
const realTurn = () => new Promise<void>((resolve) => realSetImmediate(resolve));

/** Immediates queued at once by {@link settler}: timers fired per turn of the event loop. */
const SETTLE_BATCH = 256;

/**
 * Waits until every promise job queued so far has run. Node runs the promise jobs (and
 * `process.nextTick`s) between one immediate and the next, so each immediate marks a point where
 * all is settled; queued in batches, a turn of the event loop settles many timers' work one after
 * another instead of one.
 */
function settler(): () => Promise<void> {
  const waiting: (() => void)[] = [];
  let queued = 0;
  const settled = () => {
    queued -= 1;
    waiting.shift()?.();
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      if (waiting.length <= queued) return;
      for (let index = 0; index < SETTLE_BATCH; index++) realSetImmediate(settled);
      queued += SETTLE_BATCH;
    });
}

/** Midnight UTC, 2026-06-29 (the day of MIT's incident): every run starts there. */
export const SIM_EPOCH_MS = Date.UTC(2026, 5, 29);

/** Waits `ms` of whatever clock the global timers are: virtual inside {@link withVirtualClock}. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  // The common case, without named closures: tsx's keepNames would name each one, on each call.
  if (!signal) return new Promise((resolve) => void setTimeout(resolve, Math.max(0, ms)));
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      done();
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/** Runs `work` to its end, moving the virtual clock from one due timer to the next. */
export async function drive<T>(clock: VirtualClock, work: Promise<T>): Promise<T> {
  let settled = false;
  const watched = work.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  while (!settled) await clock.next();
  return watched;
}

/** Waits `ms` of the virtual clock; 0 takes no timer (a timer of 0 could still last 1 ms). */
export function pause(ms: number): Promise<void> | undefined {
  return ms > 0 ? sleep(ms) : undefined;
}

/**
 * A cost paid in the virtual clock's whole milliseconds (its timers drop a delay's fraction):
 * each `next` adds `ms` to what is owed and pays the whole milliseconds of it, keeping the rest
 * for the next. A 0.06 ms cost then takes 1 ms about one time in 17 instead of never, the same
 * in total; a whole cost (production's 1 ms, 10 ms) is paid as it is, every time.
 */
export class WholeMs {
  private owed = 0;

  /** `ms`: the cost each `next()` adds (default 0: each `next(ms)` says its own). */
  constructor(private readonly ms = 0) {}

  next(ms = this.ms): number {
    this.owed += ms;
    const whole = Math.floor(this.owed + 1e-9);
    this.owed -= whole;
    return whole;
  }
}

/** Drives the virtual clock for the world that runs inside it. */
export interface VirtualClock {
  /** Moves time forward `ms`, firing every timer due on the way and settling what they start. */
  advance(ms: number): Promise<void>;
  /** Fires the next due timer (moving time to it) and settles what it starts. */
  next(): Promise<void>;
  now(): number;
  /** Timers set and neither fired nor cleared yet. */
  pendingTimers(): number;
}

/**
 * Runs `body` with the global clock replaced by a virtual one (@sinonjs/fake-timers):
 * `setTimeout`, `setInterval`, `setImmediate`, `Date`, `performance` and `process.hrtime` all
 * read it, so the LMS, the clients and their loops run on virtual time, unchanged. Time moves
 * only through `clock.advance`; promises and I/O-free work settle between timers. The real
 * timers come back when `body` ends, whatever way it ends.
 *
 * @example
 * await withVirtualClock(async (clock) => { const slept = sleep(1000); await clock.advance(1000); await slept; });
 */
export async function withVirtualClock<T>(body: (clock: VirtualClock) => Promise<T>): Promise<T> {
  const installed: FakeTimers.Clock = FakeTimers.install({
    now: SIM_EPOCH_MS,
    toFake: [
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'setImmediate',
      'clearImmediate',
      'Date',
      'performance',
      'hrtime',
    ],
    // A loop that never waits would spin forever on a virtual clock: fail loudly instead.
    loopLimit: 10_000_000,
  });
  const settle = settler();
  try {
    return await body({
      advance: async (ms) => {
        await installed.tickAsync(ms);
      },
      next: () => {
        if (installed.countTimers() === 0) {
          return realTurn().then(() => {
            if (installed.countTimers() === 0) {
              throw new Error('the simulated world waits for something that no timer will bring');
            }
            installed.next();
            return settle();
          });
        }
        // Called once what the last timer started has settled; fires the next one at once and
        // lets what it starts settle (fake-timers' nextAsync waits for a real turn before
        // firing too, and after: two turns of the event loop per timer).
        try {
          installed.next();
        } catch (error) {
          return Promise.reject(error);
        }
        return settle();
      },
      now: () => installed.now,
      pendingTimers: () => installed.countTimers(),
    });
  } finally {
    installed.uninstall();
  }
}

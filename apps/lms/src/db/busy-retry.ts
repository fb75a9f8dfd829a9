import { isBusy } from '../ops/errors.ts';

/**
 * Another connection (another process) held the database lock past the deadline. The
 * operation did not run; `cause` is SQLite's last SQLITE_BUSY. Routes answer 503 with
 * Retry-After: the request can be repeated as it is.
 */
export class DatabaseBusyError extends Error {
  override readonly name = 'DatabaseBusyError';

  constructor(waitedMs: number, cause: unknown) {
    super(`database locked by another connection: gave up after ${Math.round(waitedMs)} ms`, {
      cause,
    });
  }
}

/** How long a write waits for another connection's lock, by default, before it gives up. */
export const DEFAULT_BUSY_DEADLINE_MS = 5_000;
// The first retry after SQLITE_BUSY; each further one waits twice as long, up to the cap. A
// lock held for a few ms is retried within a few ms; a long one costs a retry per 100 ms.
export const FIRST_BUSY_RETRY_MS = 5;
const MAX_BUSY_RETRY_MS = 100;

/** The backoff after `backoffMs`: twice as long, at most {@link MAX_BUSY_RETRY_MS}. */
export const nextBusyBackoff = (backoffMs: number) => Math.min(backoffMs * 2, MAX_BUSY_RETRY_MS);

/** A delay between half and all of `backoffMs`, so that waiting processes spread out. */
export const jittered = (backoffMs: number) => backoffMs / 2 + (Math.random() * backoffMs) / 2;

/**
 * Runs a synchronous SQLite write (a better-sqlite3 transaction: all or nothing) and, while
 * another process holds the write lock, runs it again on a timer (5 ms doubling to 100 ms, with
 * jitter) instead of waiting on the event loop; past `deadlineMs` rejects with
 * {@link DatabaseBusyError}, which the app answers 503 with `Retry-After`. For writes that do
 * not go through the tick batcher, such as a login's admission. The first try runs at once,
 * before this returns.
 *
 * @example
 * const result = await whenNotBusy(() => admitTransaction(request));
 */
export async function whenNotBusy<T>(
  op: () => T,
  deadlineMs: number = DEFAULT_BUSY_DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let backoff = FIRST_BUSY_RETRY_MS; ; backoff = nextBusyBackoff(backoff)) {
    try {
      return op();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const left = deadline - Date.now();
      if (left <= 0) throw new DatabaseBusyError(deadlineMs, error);
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, jittered(backoff))));
    }
  }
}

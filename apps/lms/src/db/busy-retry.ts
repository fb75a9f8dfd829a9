import { isBusy } from '../ops/errors.ts';
import { DatabaseBusyError, DEFAULT_BUSY_DEADLINE_MS } from './tick-batch.ts';

const FIRST_RETRY_MS = 5;
const MAX_RETRY_MS = 100;

/**
 * Runs a synchronous SQLite write (a better-sqlite3 transaction: all or nothing) and, while
 * another process holds the write lock, runs it again on a timer (5 ms doubling to 100 ms, with
 * jitter) instead of waiting on the event loop; past `deadlineMs` rejects with
 * {@link DatabaseBusyError}, which the app answers 503 with `Retry-After`. For writes that do
 * not go through the tick batcher, such as a login's admission.
 *
 * @example
 * const result = await whenNotBusy(() => admitTransaction(request));
 */
export async function whenNotBusy<T>(
  op: () => T,
  deadlineMs: number = DEFAULT_BUSY_DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let backoff = FIRST_RETRY_MS; ; backoff = Math.min(backoff * 2, MAX_RETRY_MS)) {
    try {
      return op();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const left = deadline - Date.now();
      if (left <= 0) throw new DatabaseBusyError(deadlineMs, error);
      const delay = Math.min(left, backoff / 2 + (Math.random() * backoff) / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

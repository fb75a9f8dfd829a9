import Database from 'better-sqlite3';
import { isBusy } from '../ops/errors.ts';
import {
  DatabaseBusyError,
  DEFAULT_BUSY_DEADLINE_MS,
  FIRST_BUSY_RETRY_MS,
  jittered,
  nextBusyBackoff,
} from './busy-retry.ts';

/**
 * Runs the database work of concurrent requests in shared transactions, one per event-loop turn.
 *
 * Each SQLite transaction on a WAL file costs system calls (shared-memory locks; for a write, a
 * WAL append per changed page), and in a VM these cost more than the queries themselves. Work
 * queued during one turn runs together at the end of it (`setImmediate`): the reads in one
 * read transaction, the writes in one `BEGIN IMMEDIATE` transaction (group commit). Nothing is
 * cached: every operation reads the database at the moment its batch runs, and a promise
 * settles only after its batch has committed.
 */
export interface TickBatcher {
  /**
   * Runs `op` in this turn's read transaction. `op` must only read. Like a write, it waits for
   * a lock when SQLite answers SQLITE_BUSY, and may then run more than once.
   */
  read<T>(op: () => T): Promise<T>;
  /**
   * Runs `op` in this turn's write transaction. `op` must be atomic itself: a better-sqlite3
   * transaction function, which inside the batch becomes a savepoint, so an `op` that throws
   * rolls back alone and rejects alone. A failure of the transaction itself rejects every `op`
   * of the batch and commits none: a failure to commit, or an error after which SQLite may
   * have rolled the transaction back (disk full, I/O error, out of memory, interrupt).
   * While another connection holds the lock, the batch waits (see {@link TickBatcherOptions});
   * a batch rolled back for that runs again, so an `op` may run more than once: keep side
   * effects (new keys, clocks, metrics) outside it.
   */
  write<T>(op: () => T): Promise<T>;
}

/** How long a batch waits for another connection's lock. */
export interface TickBatcherOptions {
  /**
   * How long an operation may wait in total for another connection's lock before it is
   * rejected with {@link DatabaseBusyError}. Default 5000 ms.
   */
  busyDeadlineMs?: number;
}

interface Queued {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** `performance.now()` when the op was queued, for its busy deadline. */
  queuedAt: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Reads or writes: the ops waiting for their batch, and the wait for a lock if any. */
interface Lane {
  pending: Queued[];
  /** Set while the lane waits to retry after SQLITE_BUSY; new ops join that retry. */
  retry: NodeJS.Timeout | null;
  /** The next retry delay before jitter. */
  backoffMs: number;
  transact: (batch: Queued[]) => Outcome[];
}

// Per SQLite's documentation, after these errors SQLite may have rolled back the whole
// transaction; and when it has not, the transaction should still be rolled back.
const ABORTING_CODES = ['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_NOMEM', 'SQLITE_INTERRUPT'];

function abortsTransaction(error: unknown): boolean {
  if (!(error instanceof Database.SqliteError)) return false;
  return isBusy(error) || ABORTING_CODES.some((code) => error.code.startsWith(code));
}

/** The error that ends a batch: carried out of the transaction function to reject every op. */
class BatchAborted extends Error {
  constructor(readonly reason: unknown) {
    super('batch aborted');
  }
}

function settle(batch: readonly Queued[], outcomes: readonly Outcome[]): void {
  batch.forEach((queued, index) => {
    const outcome = outcomes[index];
    if (outcome?.ok) queued.resolve(outcome.value);
    else queued.reject(outcome?.error);
  });
}

function attempt(op: () => unknown): Outcome {
  try {
    return { ok: true, value: op() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Creates the batcher of one connection. Operations are synchronous better-sqlite3 calls.
 *
 * The connection's own busy timeout should be a few milliseconds (SERVER_BUSY_TIMEOUT_MS):
 * SQLite waits for a lock by sleeping the thread, which is the event loop. A batch that gets
 * SQLITE_BUSY is rolled back and retried on a timer instead, 5 ms later, then twice as late
 * each time (with jitter, at most 100 ms apart); ops still waiting at the deadline are
 * rejected with {@link DatabaseBusyError}. Ops queued meanwhile join the waiting batch, so
 * writes still commit in the order they were queued.
 *
 * @example
 * const batch = createTickBatcher(db.$client, { busyDeadlineMs: 5_000 });
 * const row = await batch.read(() => lookupRow.get(sessionId));
 * const pull = await batch.write(() => queue.pull('test-queue', now, key));
 */
export function createTickBatcher(
  client: Database.Database,
  options: TickBatcherOptions = {},
): TickBatcher {
  const deadlineMs = options.busyDeadlineMs ?? DEFAULT_BUSY_DEADLINE_MS;
  let scheduled = false;

  // Stops at the first op that ended the transaction or left it unusable: what follows would
  // run in autocommit mode and stay committed while the batch is reported as failed.
  const runAll = (batch: Queued[]): Outcome[] => {
    const outcomes: Outcome[] = [];
    for (const queued of batch) {
      const outcome = attempt(queued.op);
      if (!outcome.ok && abortsTransaction(outcome.error)) throw new BatchAborted(outcome.error);
      if (!client.inTransaction) {
        const ended = new Error('an operation ended the batch transaction');
        throw new BatchAborted(outcome.ok ? ended : outcome.error);
      }
      outcomes.push(outcome);
    }
    return outcomes;
  };
  const readAll = client.transaction(runAll);
  const writeAll = client.transaction(runAll);

  const lane = (transact: Lane['transact']): Lane => ({
    pending: [],
    retry: null,
    backoffMs: FIRST_BUSY_RETRY_MS,
    transact,
  });
  const reads = lane((batch) => readAll.deferred(batch));
  const writes = lane((batch) => writeAll.immediate(batch));

  function rollbackQuietly(): void {
    try {
      client.exec('ROLLBACK');
    } catch {
      // The batch is rejected with the error that ended it, which says more than this one.
    }
  }

  /** Runs the batch and settles its ops, unless the batch failed as a whole: then says why. */
  function transact(
    target: Lane,
    batch: Queued[],
  ): { failed: false } | { failed: true; error: unknown } {
    try {
      settle(batch, target.transact(batch));
      return { failed: false };
    } catch (error) {
      // better-sqlite3 rolls back when the transaction is still open; if even that failed,
      // the next batch must not begin inside what is left of this one.
      if (client.inTransaction) rollbackQuietly();
      return { failed: true, error: error instanceof BatchAborted ? error.reason : error };
    }
  }

  function waitAndRetry(target: Lane, batch: Queued[], busy: unknown): void {
    const now = performance.now();
    const waiting: Queued[] = [];
    for (const queued of batch) {
      const waited = now - queued.queuedAt;
      if (waited >= deadlineMs) queued.reject(new DatabaseBusyError(waited, busy));
      else waiting.push(queued);
    }
    if (waiting.length === 0) {
      target.backoffMs = FIRST_BUSY_RETRY_MS;
      return;
    }
    // Older ops first: they were queued before anything that arrived during the wait.
    target.pending = [...waiting, ...target.pending];
    const oldest = waiting.reduce((at, queued) => Math.min(at, queued.queuedAt), now);
    const untilDeadline = oldest + deadlineMs - now;
    const delay = Math.min(jittered(target.backoffMs), untilDeadline);
    target.backoffMs = nextBusyBackoff(target.backoffMs);
    target.retry = setTimeout(() => {
      target.retry = null;
      runLane(target);
    }, delay);
  }

  function runLane(target: Lane): void {
    if (target.retry || target.pending.length === 0) return;
    const batch = target.pending;
    target.pending = [];
    const result = transact(target, batch);
    if (!result.failed) {
      target.backoffMs = FIRST_BUSY_RETRY_MS;
    } else if (isBusy(result.error)) {
      // Rolled back: nothing of the batch is committed, so running it again is safe.
      waitAndRetry(target, batch, result.error);
    } else {
      for (const queued of batch) queued.reject(result.error);
    }
  }

  function flush(): void {
    scheduled = false;
    runLane(reads);
    runLane(writes);
  }

  function enqueue<T>(target: Lane, op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const queuedAt = performance.now();
      target.pending.push({ op, resolve: resolve as (value: unknown) => void, reject, queuedAt });
      // While the lane waits for a lock, the op joins the retry instead of a batch of its own.
      if (!target.retry && !scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
  }

  return {
    read: (op) => enqueue(reads, op),
    write: (op) => enqueue(writes, op),
  };
}

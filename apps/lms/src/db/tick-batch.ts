import type Database from 'better-sqlite3';

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
  /** Runs `op` in this turn's read transaction. `op` must only read. */
  read<T>(op: () => T): Promise<T>;
  /**
   * Runs `op` in this turn's write transaction. `op` must be atomic itself: a better-sqlite3
   * transaction function, which inside the batch becomes a savepoint, so an `op` that throws
   * rolls back alone and rejects alone. A failure to begin or commit (SQLITE_BUSY after the
   * busy timeout: another process holds the write lock) rejects every `op` of the batch.
   */
  write<T>(op: () => T): Promise<T>;
}

interface Queued {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function settle(batch: readonly Queued[], outcomes: readonly Outcome[]): void {
  batch.forEach((queued, index) => {
    const outcome = outcomes[index];
    if (outcome?.ok) queued.resolve(outcome.value);
    else queued.reject(outcome?.error);
  });
}

/**
 * Creates the batcher of one connection. Operations are synchronous better-sqlite3 calls.
 *
 * @example
 * const batch = createTickBatcher(db.$client);
 * const lookup = await batch.read(() => store.lookup(sessionId));
 * const pull = await batch.write(() => queue.pull('test-queue', now, key));
 */
export function createTickBatcher(client: Database.Database): TickBatcher {
  let reads: Queued[] = [];
  let writes: Queued[] = [];
  let scheduled = false;

  const attempt = (op: () => unknown): Outcome => {
    try {
      return { ok: true, value: op() };
    } catch (error) {
      return { ok: false, error };
    }
  };
  const runAll = (batch: Queued[]) => batch.map((queued) => attempt(queued.op));
  const readAll = client.transaction(runAll);
  const writeAll = client.transaction(runAll);

  function run(batch: Queued[], all: (batch: Queued[]) => Outcome[]): void {
    if (batch.length === 0) return;
    let outcomes: Outcome[];
    try {
      outcomes = all(batch);
    } catch (error) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    settle(batch, outcomes);
  }

  function flush(): void {
    scheduled = false;
    const readBatch = reads;
    const writeBatch = writes;
    reads = [];
    writes = [];
    run(readBatch, (batch) => readAll.deferred(batch));
    run(writeBatch, (batch) => writeAll.immediate(batch));
  }

  function enqueue<T>(queue: Queued[], op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
      if (!scheduled) {
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

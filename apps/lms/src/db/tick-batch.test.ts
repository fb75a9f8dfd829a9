import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isBusy } from '../ops/errors.ts';
import { DatabaseBusyError } from './busy-retry.ts';
import { SERVER_BUSY_TIMEOUT_MS } from './client.ts';
import { createTickBatcher } from './tick-batch.ts';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.reverse()) step();
  cleanup = [];
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tick-batch-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'db.sqlite');
}

function counterDb(path = ':memory:', timeout = 50) {
  const sqlite = new Database(path, { timeout });
  sqlite.pragma('journal_mode = WAL');
  sqlite.exec('CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
  sqlite.exec('INSERT OR IGNORE INTO counter VALUES (1, 0)');
  cleanup.push(() => sqlite.close());
  const read = sqlite.prepare<[], { n: number }>('SELECT n FROM counter WHERE id = 1');
  const bump = sqlite.transaction((fail: boolean) => {
    sqlite.prepare('UPDATE counter SET n = n + 1 WHERE id = 1').run();
    if (fail) throw new Error('op failed after its update');
    return read.get()?.n;
  });
  return { sqlite, read: () => read.get()?.n, bump };
}

/** The server's connection and a second one on the same file holding the write lock. */
function lockedCounter() {
  const path = tempPath();
  const mine = counterDb(path, SERVER_BUSY_TIMEOUT_MS);
  const other = counterDb(path).sqlite;
  other.exec('BEGIN IMMEDIATE');
  other.exec('UPDATE counter SET n = n + 10 WHERE id = 1');
  cleanup.push(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
  });
  return { ...mine, other };
}

/** Whether a promise has settled yet, without waiting for it. */
function track<T>(promise: Promise<T>) {
  const state = { settled: false };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/**
 * Puts the batcher's clocks (its retry timers, `performance.now()` for its deadline) on virtual
 * time; `setImmediate`, which ends each turn's batch, stays real. Jitter is held at its top,
 * so each retry waits its whole back-off.
 */
function virtualClock() {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
  vi.spyOn(Math, 'random').mockReturnValue(1);
  cleanup.push(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });
}

/** Lets the current turn's batch run (it runs on `setImmediate`). */
const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Moves virtual time to the batcher's next retry, which must be its only timer. */
async function nextRetry(): Promise<number> {
  expect(vi.getTimerCount()).toBe(1);
  await vi.advanceTimersToNextTimerAsync();
  return performance.now();
}

describe('createTickBatcher', () => {
  it('runs the writes of one turn inside a transaction, each seeing the ones before it', async () => {
    const { sqlite, bump } = counterDb();
    const batch = createTickBatcher(sqlite);
    const inside: boolean[] = [];
    const op = () => {
      inside.push(sqlite.inTransaction);
      return bump(false);
    };
    expect(await Promise.all([batch.write(op), batch.write(op), batch.write(op)])).toEqual([
      1, 2, 3,
    ]);
    expect(inside).toEqual([true, true, true]);
    expect(sqlite.inTransaction).toBe(false);
  });

  it('rolls back and rejects only the op that throws', async () => {
    const { sqlite, bump, read } = counterDb();
    const batch = createTickBatcher(sqlite);
    const outcomes = await Promise.allSettled([
      batch.write(() => bump(false)),
      batch.write(() => bump(true)),
      batch.write(() => bump(false)),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect(read()).toBe(2);
  });

  it('settles reads with what the database holds when the batch runs', async () => {
    const { sqlite, read } = counterDb();
    const batch = createTickBatcher(sqlite);
    const pending = batch.read(read);
    sqlite.prepare('UPDATE counter SET n = 7 WHERE id = 1').run();
    expect(await pending).toBe(7);
  });

  it('commits nothing of a batch whose transaction SQLite aborted (disk full), rejects every op with the cause, and recovers', async () => {
    const sqlite = new Database(tempPath(), { timeout: SERVER_BUSY_TIMEOUT_MS });
    cleanup.push(() => sqlite.close());
    sqlite.pragma('journal_mode = WAL');
    sqlite.exec('CREATE TABLE rows (name TEXT PRIMARY KEY, data BLOB NOT NULL)');
    const insert = sqlite.transaction((name: string, bytes: number) => {
      sqlite.prepare('INSERT INTO rows VALUES (?, ?)').run(name, Buffer.alloc(bytes));
      return name;
    });
    const names = () => sqlite.prepare('SELECT name FROM rows ORDER BY name').pluck().all();
    // A page cap stands in for a full disk: the small rows fit, B's 64 KiB of overflow pages not.
    const pages = sqlite.pragma('page_count', { simple: true }) as number;
    sqlite.pragma(`max_page_count = ${pages + 4}`);
    const batch = createTickBatcher(sqlite);

    const outcomes = await Promise.allSettled([
      batch.write(() => insert('A', 10)),
      batch.write(() => insert('B', 65_536)),
      batch.write(() => insert('C', 10)),
    ]);

    expect(names()).toEqual([]);
    expect(
      outcomes.map((outcome) => outcome.status === 'rejected' && String(outcome.reason)),
    ).toEqual(Array(3).fill('SqliteError: database or disk is full'));
    expect(sqlite.inTransaction).toBe(false);
    sqlite.pragma('max_page_count = 1000000');
    expect(await batch.write(() => insert('D', 65_536))).toBe('D');
    expect(names()).toEqual(['D']);
  });

  it('rolls the whole batch back after disk full even when SQLite undid only the statement', async () => {
    const sqlite = new Database(tempPath(), { timeout: SERVER_BUSY_TIMEOUT_MS });
    cleanup.push(() => sqlite.close());
    sqlite.pragma('journal_mode = WAL');
    sqlite.exec('CREATE TABLE rows (name TEXT PRIMARY KEY, data BLOB NOT NULL)');
    const run = (sql: string) => sqlite.transaction(() => sqlite.prepare(sql).run().changes);
    const pages = sqlite.pragma('page_count', { simple: true }) as number;
    sqlite.pragma(`max_page_count = ${pages + 4}`);
    const batch = createTickBatcher(sqlite);

    const outcomes = await Promise.allSettled([
      batch.write(run("INSERT INTO rows VALUES ('A', x'00')")),
      // A multi-row statement runs in a statement journal: SQLite keeps the transaction open.
      batch.write(
        run("INSERT INTO rows SELECT 'B' || value, zeroblob(20000) FROM json_each('[1,2,3,4]')"),
      ),
      batch.write(run("INSERT INTO rows VALUES ('C', x'00')")),
    ]);

    expect(sqlite.prepare('SELECT name FROM rows').pluck().all()).toEqual([]);
    expect(
      outcomes.map((outcome) => outcome.status === 'rejected' && String(outcome.reason)),
    ).toEqual(Array(3).fill('SqliteError: database or disk is full'));
    expect(sqlite.inTransaction).toBe(false);
  });

  it('waits for another connection’s write lock on timers, 5 ms doubling to 100 ms, serving reads meanwhile, then commits', async () => {
    virtualClock();
    const { sqlite, bump, read, other } = lockedCounter();
    const batch = createTickBatcher(sqlite);
    const start = performance.now();
    const write = batch.write(() => bump(false));
    const waiting = track(write);
    await endOfTurn();

    // Each try that finds the lock taken hands the event loop back until its retry timer.
    const retries: number[] = [];
    while (retries.length < 7) retries.push((await nextRetry()) - start);
    expect(retries).toEqual([5, 15, 35, 75, 155, 255, 355]);
    // Reads do not queue behind the waiting write: WAL readers see the last commit.
    expect(await batch.read(read)).toBe(0);
    expect(waiting.settled).toBe(false);
    other.exec('COMMIT');

    await nextRetry();
    expect(await write).toBe(11);
  });

  it('commits the writes queued during the wait together with the waiting ones, in order', async () => {
    virtualClock();
    const { sqlite, bump, other } = lockedCounter();
    const batch = createTickBatcher(sqlite);
    const first = batch.write(() => bump(false));
    await endOfTurn();
    await vi.advanceTimersByTimeAsync(50);
    const second = batch.write(() => bump(false));
    await vi.advanceTimersByTimeAsync(50);
    other.exec('COMMIT');
    await nextRetry();
    expect(await Promise.all([first, second])).toEqual([11, 12]);
  });

  it('rejects the whole write batch with DatabaseBusyError once the lock outlasts the deadline', async () => {
    virtualClock();
    const { sqlite, bump, read, other } = lockedCounter();
    const batch = createTickBatcher(sqlite, { busyDeadlineMs: 200 });
    const outcomes = Promise.allSettled([
      batch.write(() => bump(false)),
      batch.write(() => bump(false)),
    ]);
    const settled = track(outcomes);
    await endOfTurn();
    await vi.advanceTimersByTimeAsync(199);
    expect(settled.settled).toBe(false);
    // The last retry is due at the deadline itself.
    await vi.advanceTimersByTimeAsync(1);
    expect(settled.settled).toBe(true);
    other.exec('ROLLBACK');

    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected');
      const reason = (outcome as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(DatabaseBusyError);
      expect(isBusy((reason as DatabaseBusyError).cause)).toBe(true);
    }
    expect(read()).toBe(0);
    expect(await batch.write(() => bump(false))).toBe(1);
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isBusy } from '../ops/errors.ts';
import { createTickBatcher } from './tick-batch.ts';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.reverse()) step();
  cleanup = [];
});

function counterDb(path = ':memory:') {
  const sqlite = new Database(path, { timeout: 50 });
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

  it('rejects the whole write batch while another connection holds the write lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tick-batch-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'db.sqlite');
    const { sqlite, bump, read } = counterDb(path);
    const other = counterDb(path).sqlite;
    other.exec('BEGIN IMMEDIATE');
    const batch = createTickBatcher(sqlite);
    const outcomes = await Promise.allSettled([
      batch.write(() => bump(false)),
      batch.write(() => bump(false)),
    ]);
    other.exec('ROLLBACK');
    for (const outcome of outcomes) {
      expect(outcome.status === 'rejected' && isBusy(outcome.reason)).toBe(true);
    }
    expect(read()).toBe(0);
    expect(await batch.write(() => bump(false))).toBe(1);
  });
});

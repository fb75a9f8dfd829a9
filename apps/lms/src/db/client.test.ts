import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from './client.ts';

let dir: string | undefined;
let database: LmsDatabase | undefined;
afterEach(() => {
  database?.close();
  database = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function open(options: Omit<Parameters<typeof openDatabase>[0], 'path'>) {
  dir = mkdtempSync(join(tmpdir(), 'lms-client-'));
  database = openDatabase({ path: join(dir, 'lms.db'), ...options });
  return database.sqlite;
}

describe('openDatabase', () => {
  // SQLite's numbers for PRAGMA synchronous: 1 = NORMAL, 2 = FULL.
  it.each([
    ['normal', 1],
    ['full', 2],
  ] as const)('applies synchronous = %s on the WAL file', (synchronous, pragmaValue) => {
    const sqlite = open({ synchronous });
    expect(sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(sqlite.pragma('synchronous', { simple: true })).toBe(pragmaValue);
  });

  it('makes every commit durable (FULL) unless told otherwise', () => {
    expect(open({}).pragma('synchronous', { simple: true })).toBe(2);
  });

  it('sets the synchronous busy timeout it is given', () => {
    expect(open({ busyTimeoutMs: 5 }).pragma('busy_timeout', { simple: true })).toBe(5);
  });
});

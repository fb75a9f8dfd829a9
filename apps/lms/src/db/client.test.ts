import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
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

const LMS_DIR = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT = fileURLToPath(new URL('./client.ts', import.meta.url));
const COMMITS = 10;

/**
 * Opens a database with `synchronous` in a child process under strace and commits COMMITS
 * single-row transactions; returns the files the child synced (fsync or fdatasync) between
 * the first and the last commit, one entry per call. Markers (synced files of their own)
 * bracket the commits, so the migrations before and the close after are not counted.
 */
async function syncedDuringCommits(synchronous: 'normal' | 'full'): Promise<string[]> {
  dir = mkdtempSync(join(tmpdir(), 'lms-client-'));
  const trace = join(dir, 'strace.txt');
  const child = `
    import { fsyncSync, openSync } from 'node:fs';
    import { openDatabase } from ${JSON.stringify(CLIENT)};
    const [path, synchronous, marker] = process.argv.slice(1);
    const database = openDatabase({ path, synchronous });
    database.sqlite.exec('CREATE TABLE probe (n INTEGER)');
    const insert = database.sqlite.prepare('INSERT INTO probe VALUES (?)');
    fsyncSync(openSync(marker + '-begin', 'w'));
    for (let n = 0; n < ${COMMITS}; n++) insert.run(n);
    fsyncSync(openSync(marker + '-end', 'w'));
    database.close();`;
  const args = ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace];
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', child];
  await promisify(execFile)(
    'strace',
    [...args, ...node, join(dir, 'lms.db'), synchronous, join(dir, 'marker')],
    {
      cwd: LMS_DIR,
    },
  ).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new Error('this test counts syncs with strace: install it');
    throw error;
  });
  // Lines like `1234 fdatasync(20</tmp/.../lms.db-wal>) = 0`.
  const synced = [...readFileSync(trace, 'utf8').matchAll(/f(?:data)?sync\(\d+<([^>]+)>\)/g)].map(
    (match) => match[1]!.slice(dir!.length + 1),
  );
  return synced.slice(synced.indexOf('marker-begin') + 1, synced.indexOf('marker-end'));
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

  // What the pragma promises, seen at the system calls: FULL syncs the WAL at every commit,
  // NORMAL leaves it to the checkpoints (none happens within these few commits).
  it.each([
    ['full', Array<string>(COMMITS).fill('lms.db-wal')],
    ['normal', []],
  ] as const)(
    'with synchronous = %s, syncs the WAL to disk as each commit needs',
    async (synchronous, synced) => {
      expect(await syncedDuringCommits(synchronous)).toEqual(synced);
    },
    60_000,
  );

  it('sets the synchronous busy timeout it is given', () => {
    expect(open({ busyTimeoutMs: 5 }).pragma('busy_timeout', { simple: true })).toBe(5);
  });
});

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { SEED_DEFAULTS, seed } from '../seed.ts';
import { findCredentials } from '../users.ts';
import { createSubmissionQueue } from './submission-queue.ts';
import { createSubmission } from './submissions.ts';

const MIGRATIONS = fileURLToPath(new URL('../../drizzle', import.meta.url));
let tempDir: string | undefined;
afterEach(() => {
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
});

/** The committed migrations up to and including `tag`, in a folder of their own. */
function migrationsUpTo(tag: string): string {
  tempDir = mkdtempSync(join(tmpdir(), 'lms-migrations-'));
  cpSync(MIGRATIONS, tempDir, { recursive: true });
  const journalPath = join(tempDir, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as {
    entries: { tag: string }[];
  };
  const last = journal.entries.findIndex((entry) => entry.tag === tag);
  journal.entries = journal.entries.slice(0, last + 1);
  writeFileSync(journalPath, JSON.stringify(journal));
  return tempDir;
}

describe('migration 0003_status_time', () => {
  it('backfills status_at of existing submissions from their last state change', () => {
    const sqlite = new Database(':memory:');
    const db = drizzle({ client: sqlite });
    migrate(db, { migrationsFolder: migrationsUpTo('0002_pulled_index') });
    sqlite.exec(`
      INSERT INTO queues (name, created_at) VALUES ('q', 1);
      INSERT INTO problems (id, queue_name, grader_payload) VALUES ('p', 'q', '{}');
      INSERT INTO users (id, username, password, date_joined) VALUES ('u', 'u', 'x', 1);
      INSERT INTO submissions (queue_name, student_id, problem_id, body, state, created_at,
          pulled_at, graded_at, pull_key)
        VALUES ('q', 'u', 'p', '{}', 'pending', 100, NULL, NULL, NULL),
          ('q', 'u', 'p', '{}', 'pulled', 100, 200, NULL, 'k'),
          ('q', 'u', 'p', '{}', 'graded', 100, 200, 300, 'k'),
          ('q', 'u', 'p', '{}', 'failed', 100, 200, NULL, 'k');`);
    migrate(db, { migrationsFolder: MIGRATIONS });
    const rows = sqlite
      .prepare(
        'SELECT state, status_at AS statusAt, score_failures AS scoreFailures FROM submissions ORDER BY id',
      )
      .all();
    expect(rows).toEqual([
      { state: 'pending', statusAt: 100, scoreFailures: 0 },
      { state: 'pulled', statusAt: 200, scoreFailures: 0 },
      { state: 'graded', statusAt: 300, scoreFailures: 0 },
      { state: 'failed', statusAt: 100, scoreFailures: 0 },
    ]);
    sqlite.close();
  });
});

describe('createSubmissionQueue', () => {
  let database: LmsDatabase | undefined;
  afterEach(() => {
    database?.close();
    database = undefined;
  });

  async function pulledSubmission() {
    database = openDatabase({ path: ':memory:' });
    const { db } = database;
    await seed(db, { ...SEED_DEFAULTS, students: 1 }, { iterations: 1, now: 1_000 });
    const created = createSubmission(db, {
      studentId: findCredentials(db, 'student1')!.id,
      queueName: 'test-queue',
      problemId: 'test-queue-p1',
      studentResponse: 'x',
      now: 1_000,
    });
    if (!created.ok) throw new Error(created.message);
    const queue = createSubmissionQueue(db, { lockMs: 60_000, maxFailures: 0 });
    const pulled = queue.pull('test-queue', 2_000, 'key-1');
    if (pulled.kind !== 'pulled') throw new Error('nothing to pull');
    const accepted = () =>
      database!.sqlite
        .prepare('SELECT submission_id AS id, accepted FROM result_acceptances')
        .all() as { id: number; accepted: number }[];
    return { queue, id: pulled.id, accepted };
  }

  it('counts every result answered with success, a repeat of the accepted one included', async () => {
    const { queue, id, accepted } = await pulledSubmission();
    const put = (key: string | null, score: number | null, now: number) =>
      queue.putResult({ id, key, result: { score }, now }).kind;
    expect(accepted()).toEqual([]);
    expect(put('key-1', 1, 3_000)).toBe('accepted');
    expect(accepted()).toEqual([{ id, accepted: 1 }]);
    expect(put('key-1', 0, 4_000)).toBe('repeat');
    expect(put('key-1', null, 5_000)).toBe('repeat');
    expect(accepted()).toEqual([{ id, accepted: 3 }]);
    // Refused results are not counted.
    expect(put('key-2', 1, 6_000)).toBe('stale-key');
    expect(put(null, 1, 6_000)).toBe('stale-key');
    expect(
      queue.putResult({ id: id + 1, key: 'key-1', result: { score: 1 }, now: 6_000 }).kind,
    ).toBe('unknown');
    expect(accepted()).toEqual([{ id, accepted: 3 }]);
  });

  it('does not count a result without a usable score that sends the submission back', async () => {
    const { queue, id, accepted } = await pulledSubmission();
    expect(queue.putResult({ id, key: 'key-1', result: { score: null }, now: 3_000 }).kind).toBe(
      'unscored',
    );
    expect(accepted()).toEqual([]);
  });
});

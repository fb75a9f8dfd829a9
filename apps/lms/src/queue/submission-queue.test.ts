import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterEach, describe, expect, it } from 'vitest';

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

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { type BetterSQLite3Database, drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as schema from './schema.ts';

/** The drizzle handle every module takes as a dependency (a transaction is one too). */
export type Db = BetterSQLite3Database<typeof schema>;

/**
 * The drizzle handle with the better-sqlite3 connection under it (`$client`), as
 * {@link openDatabase} returns it: the per-request paths prepare their statements on it once.
 */
export type ClientDb = Db & { $client: Database.Database };

/** An open database: drizzle for queries, the raw client for transactions and closing. */
export interface LmsDatabase {
  db: ClientDb;
  sqlite: Database.Database;
  close(): void;
}

/**
 * What SQLite's `synchronous` pragma may be set to (`SQLITE_SYNCHRONOUS`). In WAL mode:
 * `full` syncs the WAL to disk at every commit, so a commit survives a power loss; `normal`
 * syncs only at checkpoints, so a commit survives the process dying (crash, SIGKILL) but the
 * last commits may be lost when the machine loses power or the OS crashes.
 */
export const SYNCHRONOUS_MODES = ['normal', 'full'] as const;

/** One of {@link SYNCHRONOUS_MODES}. */
export type SynchronousMode = (typeof SYNCHRONOUS_MODES)[number];

/**
 * The busy timeout of the server's connection: how long a statement may wait, synchronously,
 * for another process's lock. The wait blocks the event loop, so it is kept to a few
 * milliseconds; the tick batcher waits longer by retrying on timers (see createTickBatcher).
 */
export const SERVER_BUSY_TIMEOUT_MS = 5;

export interface OpenDatabaseOptions {
  /** A file path, or `:memory:` for tests. */
  path: string;
  /**
   * How long a statement waits, blocking the thread, for another process's lock before
   * SQLITE_BUSY. Default 5000 ms, for command-line tools; the server passes
   * {@link SERVER_BUSY_TIMEOUT_MS}.
   */
  busyTimeoutMs?: number;
  /** When a commit reaches the disk; see {@link SYNCHRONOUS_MODES}. Default `full`. */
  synchronous?: SynchronousMode;
  /** Apply the committed migrations. Default true. */
  migrate?: boolean;
}

const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/**
 * Opens (creating if needed) the SQLite database in WAL mode with foreign keys on and the
 * chosen `synchronous` level, and applies the committed drizzle-kit migrations.
 *
 * @example
 * const database = openDatabase({ path: ':memory:' });
 * const app = createApp({ database, ... });
 */
export function openDatabase(options: OpenDatabaseOptions): LmsDatabase {
  const synchronous = options.synchronous ?? 'full';
  // The value goes into the pragma text: refuse anything else rather than interpolate it.
  if (!SYNCHRONOUS_MODES.includes(synchronous)) {
    throw new TypeError(
      `synchronous=${JSON.stringify(synchronous)} is invalid: expected ${SYNCHRONOUS_MODES.join(' or ')}`,
    );
  }
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const sqlite = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5_000 });
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${synchronous.toUpperCase()}`);
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle({ client: sqlite, schema });
  if (options.migrate ?? true) migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
  return {
    db,
    sqlite,
    close: () => {
      if (sqlite.open) sqlite.close();
    },
  };
}

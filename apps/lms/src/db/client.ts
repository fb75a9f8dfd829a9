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

export interface OpenDatabaseOptions {
  /** A file path, or `:memory:` for tests. */
  path: string;
  /** How long a writer waits for another process's lock before SQLITE_BUSY. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Apply the committed migrations. Default true. */
  migrate?: boolean;
}

const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/**
 * Opens (creating if needed) the SQLite database in WAL mode with foreign keys on, and applies
 * the committed drizzle-kit migrations.
 *
 * @example
 * const database = openDatabase({ path: ':memory:' });
 * const app = createApp({ database, ... });
 */
export function openDatabase(options: OpenDatabaseOptions): LmsDatabase {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const sqlite = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5_000 });
  sqlite.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; only a power loss may drop the tail.
  sqlite.pragma('synchronous = NORMAL');
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

import Database from 'better-sqlite3';

/** Stored data that the code itself wrote is unreadable: a bug or a hand-edited database. */
export class StoredDataError extends Error {
  override readonly name = 'StoredDataError';
}

/** Whether an error is SQLite's "database is locked" after the busy timeout. */
export function isBusy(error: unknown): boolean {
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
}

import type { ClientDb } from '../db/client.ts';
import { type SavedUser, type SaveUserOptions, saveUser } from '../users.ts';
import {
  type OpenedSessionStore,
  openServerSessionStore,
  type SessionStoreConfig,
  SessionStoreUnreachableError,
} from './factory.ts';
import type { SessionStore } from './store.ts';

// A password change is one operation: the new hash, and the end of every session issued before
// it in the store the server uses. The seed, `pnpm lms user add` and anything else that sets a
// password go through saveAccounts, so none of them leaves old sessions in a store it forgot.

/** What a password change did to its users' sessions. */
export type SessionsEnded = { ended: number } | { unreachable: SessionStoreUnreachableError };

/** Where a password change ends sessions: the store the server uses. */
export interface PasswordChangeSessions {
  /** Ends every live session of these users, reason `password-change`. */
  endAll(userIds: readonly string[]): Promise<SessionsEnded>;
}

async function endAllIn(store: SessionStore, userIds: readonly string[]): Promise<number> {
  let ended = 0;
  for (const id of userIds) ended += await store.endAll(id, 'password-change');
  return ended;
}

/**
 * The sessions of a store the caller holds open: a server's own.
 *
 * @example
 * await saveAccount(db, storeSessions(services.store), { username, passwordHash, now });
 */
export function storeSessions(store: SessionStore): PasswordChangeSessions {
  return { endAll: async (userIds) => ({ ended: await endAllIn(store, userIds) }) };
}

/**
 * The sessions of the store the server on `db` uses, as its last start recorded it (see
 * `serverSessionStore`; `shell` is this process's own `SESSION_STORE`, which gives the recorded
 * Redis its password), opened only when a password changed and closed after. When that Redis
 * cannot be reached it says so instead of throwing: the password stays changed, and each old
 * session is refused all the same on its next request (its session auth hash no longer
 * matches) and ends there.
 *
 * @example
 * const saved = await saveAccount(db, serverSessions(db, config.sessionStore), options);
 */
export function serverSessions(
  db: ClientDb,
  shell: SessionStoreConfig = { kind: 'sqlite' },
): PasswordChangeSessions {
  // Ending sessions reads neither the session lifetime nor the enforcement.
  const settings = { sessionStore: shell, sessionTtlSeconds: 1, enforcement: 'atomic' } as const;
  return {
    async endAll(userIds) {
      if (userIds.length === 0) return { ended: 0 };
      let opened: OpenedSessionStore | null = null;
      try {
        opened = await openServerSessionStore(settings, db);
        return { ended: await endAllIn(opened.store, userIds) };
      } catch (error) {
        if (error instanceof SessionStoreUnreachableError) return { unreachable: error };
        // Lost after the PING: the same as never reached, for the sessions still there.
        const where = opened?.where;
        if (where?.kind !== 'redis') throw error;
        return { unreachable: new SessionStoreUnreachableError(where.url, where.prefix, error) };
      } finally {
        opened?.close();
      }
    },
  };
}

/** What {@link saveAccounts} did: each user as saved, and what became of the old sessions. */
export interface SavedAccounts {
  users: SavedUser[];
  sessions: SessionsEnded;
}

/**
 * Saves users (users.ts's `saveUser`, all in one transaction) and then, for each existing user
 * whose password this set, ends every session in `sessions` (reason `password-change`), as
 * Django does when a password changes: an old cookie stops working, and its session stops
 * counting toward a limit at once.
 *
 * @example
 * const { users, sessions } = await saveAccounts(db, serverSessions(db), [alice, bob]);
 * // sessions: { ended: 3 }, or { unreachable: SessionStoreUnreachableError }
 */
export async function saveAccounts(
  db: ClientDb,
  sessions: PasswordChangeSessions,
  accounts: readonly SaveUserOptions[],
): Promise<SavedAccounts> {
  const users = db.transaction((tx) => accounts.map((account) => saveUser(tx, account)));
  const changed = users.filter((user) => user.passwordSet && !user.created);
  return { users, sessions: await sessions.endAll(changed.map((user) => user.id)) };
}

/**
 * One account of {@link saveAccounts}: creates or updates a user; a new password of an existing
 * one ends its sessions in `sessions`.
 *
 * @example
 * await saveAccount(db, serverSessions(db, config.sessionStore), { username, passwordHash, now });
 * // { id: '…', created: false, passwordSet: true, sessions: { ended: 2 } }
 */
export async function saveAccount(
  db: ClientDb,
  sessions: PasswordChangeSessions,
  account: SaveUserOptions,
): Promise<SavedUser & { sessions: SessionsEnded }> {
  const { users, sessions: ended } = await saveAccounts(db, sessions, [account]);
  return { ...users[0]!, sessions: ended };
}

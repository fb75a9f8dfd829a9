import type { LiveSession } from '@storm-lab/session-policy';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { sessionEnds, sessions } from '../db/schema.ts';
import { isShortId, shortIdMatch } from './shared.ts';
import type { EndingReason, EndOptions, SessionDetails, ShortIdMatch } from './store.ts';

// The SQLite store's own statements: admitting, listing and ending the sessions it keeps in the
// `sessions` table (see sqlite-store.ts).

/**
 * Ends every live session of a user at once, remembering why (and who) so that each cookie's
 * next request is told (`session_end.reason`), as `SessionStore.end` does for one
 * session. Django ends them when a password changes (the session auth hash stops matching), so
 * `password-change`; staff ending an account's sessions use `staff`, and a user ending their
 * other sessions `user`, with `except` their current one. Tracked and exempt sessions alike;
 * an expired one is left to say `expired`. Takes a transaction too, so a password and the
 * sessions it let in change together. Returns how many sessions ended.
 *
 * @example
 * endAllSessionsOf(tx, userId, 'password-change', Date.now()); // 2
 * endAllSessionsOf(db, userId, 'staff', Date.now(), { endedBy: 'staff' });
 */
export function endAllSessionsOf(
  db: Db,
  userId: string,
  reason: EndingReason,
  at: number,
  options: EndOptions = {},
): number {
  const endedBy = options.endedBy ?? null;
  // `id IS NOT NULL` holds for every row: without an exception, every session ends.
  const kept = sql`${sessions.id} IS NOT ${options.except ?? null}`;
  return db.transaction((tx) => {
    // Plain SQL: INSERT … SELECT copies every session's row in one statement.
    tx.run(sql`
      INSERT INTO session_ends (session_id, user_id, reason, at, ended_by)
      SELECT id, user_id, ${reason}, ${at}, ${endedBy} FROM sessions
      WHERE user_id = ${userId} AND expires_at > ${at} AND ${kept}
      ON CONFLICT (session_id) DO NOTHING`);
    return tx
      .delete(sessions)
      .where(and(eq(sessions.userId, userId), gt(sessions.expiresAt, at), kept))
      .run().changes;
  });
}

/**
 * The live sessions of a user, oldest first.
 *
 * @example
 * liveSessionsOf(db, userId, Date.now()).map((session) => shortId(session.id)); // ['3f9c2a1b']
 */
export function liveSessionsOf(db: Db, userId: string, at: number): SessionDetails[] {
  return db
    .select({
      id: sessions.id,
      createdAt: sessions.createdAt,
      lastSeenAt: sessions.lastSeenAt,
      instanceId: sessions.instanceId,
      userAgent: sessions.userAgent,
      address: sessions.address,
      tracked: sessions.tracked,
      pool: sessions.pool,
    })
    .from(sessions)
    .where(and(eq(sessions.userId, userId), gt(sessions.expiresAt, at)))
    .orderBy(asc(sessions.createdAt), asc(sessions.id))
    .all();
}

/**
 * Finds the live session of a user whose id starts with `short` (8 lowercase hex digits, the
 * short id of the logs and the session lists). Another user's session is `none`.
 *
 * @example
 * findLiveSession(db, userId, '3f9c2a1b', Date.now()); // { kind: 'found', sessionId: '3f9c…' }
 */
export function findLiveSession(db: Db, userId: string, short: string, at: number): ShortIdMatch {
  if (!isShortId(short)) return { kind: 'none' };
  const rows = db
    .select({ id: sessions.id })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, userId),
        gt(sessions.expiresAt, at),
        sql`substr(${sessions.id}, 1, 8) = ${short}`,
      ),
    )
    .limit(2)
    .all();
  return shortIdMatch(rows.map((row) => row.id));
}

/**
 * Ends one live session of a user and remembers why and who, in one transaction. False when
 * it is no longer there, has expired, or belongs to someone else.
 *
 * @example
 * endSessionOf(db, userId, sessionId, 'user', Date.now(), { endedBy: 'student1' }); // true
 */
export function endSessionOf(
  db: Db,
  userId: string,
  sessionId: string,
  reason: EndingReason,
  at: number,
  options: Pick<EndOptions, 'endedBy'> = {},
): boolean {
  return db.transaction((tx) => {
    const ended = tx
      .delete(sessions)
      .where(
        and(eq(sessions.id, sessionId), eq(sessions.userId, userId), gt(sessions.expiresAt, at)),
      )
      .run().changes;
    if (ended === 0) return false;
    tx.insert(sessionEnds)
      .values({ sessionId, userId, reason, at, endedBy: options.endedBy ?? null })
      .onConflictDoNothing()
      .run();
    return true;
  });
}

const placeholder = (name: string) => sql.placeholder(name);

/** The SQLite store's own statements of an admission; see {@link admissionRows}. */
export interface AdmissionRows {
  /** The user's tracked sessions live at `at`, oldest first: what the policy decides on. */
  liveTracked(userId: string, at: number): LiveSession[];
  /** Records the admitted session. */
  insert(row: typeof sessions.$inferSelect): void;
  /** Deletes one session (an evicted one, or the one the login replaces). */
  remove(sessionId: string): void;
}

/**
 * The SQLite store's admission statements, prepared once on `db`'s connection as
 * `loginRows` (login-rows.ts) are: every login of a storm runs them, inside its IMMEDIATE transaction.
 *
 * @example
 * const rows = admissionRows(db);
 * db.transaction(() => rows.liveTracked(userId, Date.now()), { behavior: 'immediate' });
 */
export function admissionRows(db: Db): AdmissionRows {
  const liveTracked = db
    .select({
      id: sessions.id,
      createdAt: sessions.createdAt,
      instanceId: sessions.instanceId,
      lastSeenAt: sessions.lastSeenAt,
      pool: sessions.pool,
    })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, placeholder('userId')),
        eq(sessions.tracked, true),
        gt(sessions.expiresAt, placeholder('at')),
      ),
    )
    .orderBy(asc(sessions.createdAt), asc(sessions.id))
    .prepare();
  const insert = db
    .insert(sessions)
    .values({
      id: placeholder('id'),
      userId: placeholder('userId'),
      createdAt: placeholder('createdAt'),
      expiresAt: placeholder('expiresAt'),
      lastSeenAt: placeholder('lastSeenAt'),
      instanceId: placeholder('instanceId'),
      tracked: placeholder('tracked'),
      userAgent: placeholder('userAgent'),
      address: placeholder('address'),
      pool: placeholder('pool'),
      authHash: placeholder('authHash'),
    })
    .prepare();
  const remove = db
    .delete(sessions)
    .where(eq(sessions.id, placeholder('id')))
    .prepare();
  return {
    liveTracked: (userId, at) => liveTracked.all({ userId, at }),
    insert(row) {
      insert.run(row);
    },
    remove(id) {
      remove.run({ id });
    },
  };
}

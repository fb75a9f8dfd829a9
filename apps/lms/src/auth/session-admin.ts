import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { sessionEnds, sessions } from '../db/schema.ts';
import type { StoredEndReason } from './session-store.ts';

// Ending sessions by hand, and listing them: what users, staff and the CLI do with sessions
// besides logging in and out (see routes/sessions.ts and `pnpm lms sessions`).

/** Why sessions end when something other than a login ends them. */
export type EndingReason = Exclude<StoredEndReason, 'evicted'>;

/** Who ends sessions: a username (a staff member, the user, `(cli)`), or the system. */
export interface EndOptions {
  /** Null or absent when the system ends them (a password change). */
  endedBy?: string | null;
  /** A session to leave alone: the current one, when a user ends their others. */
  except?: string;
}

/**
 * Ends every live session of a user at once, remembering why (and who) so that each cookie's
 * next request is told (`session_end.reason`), as {@link SessionStore.end} does for one
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

/** A live session as its user and staff see it. */
export interface SessionDetails {
  /** The full id (the SHA-256 of the cookie): never shown, only its short id. */
  id: string;
  createdAt: number;
  /** Refreshed at most once a minute. */
  lastSeenAt: number;
  instanceId: string | null;
  userAgent: string | null;
  address: string | null;
  /** False for an exempt or unrestricted login: it never counts toward a limit. */
  tracked: boolean;
  /** The pool it counts in: `default`, or `path:<text>` under a rule with a `path`. */
  pool: string;
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

const SHORT_ID_PATTERN = /^[0-9a-f]{8}$/;

/** A short id resolved among one user's live sessions. */
export type ShortIdMatch =
  | { kind: 'found'; sessionId: string }
  | { kind: 'none' }
  /** Two or more of the user's sessions share the short id (32 bits: rare, never guessed at). */
  | { kind: 'ambiguous' };

/**
 * Finds the live session of a user whose id starts with `short` (8 lowercase hex digits, the
 * short id of the logs and the session lists). Another user's session is `none`.
 *
 * @example
 * findLiveSession(db, userId, '3f9c2a1b', Date.now()); // { kind: 'found', sessionId: '3f9c…' }
 */
export function findLiveSession(db: Db, userId: string, short: string, at: number): ShortIdMatch {
  if (!SHORT_ID_PATTERN.test(short)) return { kind: 'none' };
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
  const [first] = rows;
  if (!first) return { kind: 'none' };
  return rows.length > 1 ? { kind: 'ambiguous' } : { kind: 'found', sessionId: first.id };
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

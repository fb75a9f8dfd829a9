import { DEFAULT_POOL } from '@storm-lab/session-policy';
import type { ClientDb } from '../db/client.ts';
import type { LmsUser } from '../users.ts';
import { createAuthHashCheck } from './auth-hash.ts';
import { type SessionEnd, type SessionLookup, TOMBSTONE_TTL_MS } from './store.ts';

// What every request's session lookup reads and decides, in either store: the user behind the
// session, why a session is gone, and whether a live one still holds (its auth hash).

/** A session's user with their groups, as every lookup reads them. */
export interface UserRow {
  username: string;
  /** The stored password hash, for the session auth hash. */
  password: string;
  isStaff: number;
  isActive: number;
  /** JSON array of the user's group names. */
  groups: string;
}

const USER_COLUMNS = `u.username, u.password, u.is_staff AS isStaff, u.is_active AS isActive,
  (SELECT json_group_array(g.name) FROM user_groups ug JOIN groups g ON g.id = ug.group_id
    WHERE ug.user_id = u.id) AS groups`;

/** A row of {@link SESSION_LOOKUP_SQL}: the SQLite session and its user. */
export interface SessionRow extends UserRow {
  userId: string;
  expiresAt: number;
  lastSeenAt: number;
  instanceId: string | null;
  /** The session auth hash the login recorded; null before migration 0009. */
  authHash: string | null;
}

// Every request runs one of these two, prepared once per store: with the SQLite store the
// session, its user and groups in one statement; with Redis (which holds the session) the user.
/** The SQLite store's lookup, by session id ({@link SessionRow}). */
export const SESSION_LOOKUP_SQL = `
  SELECT s.user_id AS userId, s.expires_at AS expiresAt, s.last_seen_at AS lastSeenAt,
         s.instance_id AS instanceId, s.auth_hash AS authHash, ${USER_COLUMNS}
  FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE s.id = ?`;

/** The Redis store's lookup of a session's user, by user id ({@link UserRow}). */
export const USER_LOOKUP_SQL = `SELECT ${USER_COLUMNS} FROM users u WHERE u.id = ?`;

// Writing last use on every request would turn every read into a write.
const TOUCH_INTERVAL_MS = 60_000;

/** The user of a lookup row, groups sorted (in JavaScript, as groupsOf sorts them). */
export function toUser(id: string, row: UserRow): LmsUser {
  const groups = (JSON.parse(row.groups) as string[]).sort();
  return {
    id,
    username: row.username,
    isStaff: row.isStaff === 1,
    isActive: row.isActive === 1,
    groups,
  };
}

/** What the check of a live session reads of it, in either store. */
export interface FoundSession {
  userId: string;
  instanceId: string | null;
  lastSeenAt: number;
  /** As the login recorded it; absent or null for a session from before the LMS kept it. */
  authHash: string | null | undefined;
}

/**
 * A found session, checked: live (and whether its last use is due to be written), or of an
 * older password, to be ended by the store (`password-change`).
 */
export type CheckedSession =
  | { kind: 'live'; lookup: Extract<SessionLookup, { kind: 'live' }>; touch: boolean }
  | { kind: 'stale'; username: string };

/**
 * Creates the check every lookup of a found session ends with, one per store: its recorded
 * auth hash against its user's password hash now (as Django's `get_user`), and whether its last
 * use is a minute old or more, so that a store writes it at most once a minute.
 *
 * @example
 * const check = createSessionCheck();
 * const checked = check(sessionId, session, userRow, now());
 * if (checked.kind === 'stale') endIt('password-change');
 */
export function createSessionCheck() {
  const authHashMatches = createAuthHashCheck();
  return (sessionId: string, session: FoundSession, user: UserRow, at: number): CheckedSession => {
    if (!authHashMatches(session.authHash, user.password)) {
      return { kind: 'stale', username: user.username };
    }
    const { userId, instanceId } = session;
    return {
      kind: 'live',
      lookup: { kind: 'live', sessionId, userId, instanceId, user: toUser(userId, user) },
      touch: at - session.lastSeenAt >= TOUCH_INTERVAL_MS,
    };
  };
}

/**
 * A session refused because its user's password changed since its login; `endedFor` names the
 * account when this lookup ended it (so that one request logs it), null when another did.
 */
export function passwordChanged(at: number, endedFor: string | null): SessionLookup {
  const end: SessionEnd = { reason: 'password-change', at };
  return endedFor === null
    ? { kind: 'ended', end }
    : { kind: 'ended', end, endedNow: { username: endedFor } };
}

/** A `session_ends` row as the lookup reads it. */
interface TombstoneRow {
  reason: SessionEnd['reason'];
  at: number;
  byInstance: string | null;
  bySession: string | null;
  quotaUsed: number | null;
  quotaMax: number | null;
  quotaScope: 'account' | 'instance' | null;
  quotaPool: string | null;
}

function toSessionEnd(row: TombstoneRow): SessionEnd {
  const end: SessionEnd = { reason: row.reason, at: row.at };
  if (row.reason !== 'evicted' || row.bySession === null) return end;
  const quota =
    row.quotaUsed !== null && row.quotaMax !== null && row.quotaScope !== null
      ? {
          used: row.quotaUsed,
          max: row.quotaMax,
          scope: row.quotaScope,
          pool: row.quotaPool ?? DEFAULT_POOL,
        }
      : null;
  return { ...end, eviction: { byInstance: row.byInstance, bySession: row.bySession, quota } };
}

/**
 * Reads why a session ended from its tombstone (`session_ends`, kept in SQLite by both stores),
 * for a day after it ended; null when there is none.
 *
 * @example
 * const endedReason = tombstoneReader(db);
 * endedReason(sessionId, Date.now()); // { kind: 'ended', end: { reason: 'staff', at } } or null
 */
export function tombstoneReader(
  db: ClientDb,
): (sessionId: string, at: number) => SessionLookup | null {
  const tombstoneRow = db.$client.prepare<[string], TombstoneRow>(
    `SELECT reason, at, by_instance AS byInstance, by_session AS bySession,
            quota_used AS quotaUsed, quota_max AS quotaMax, quota_scope AS quotaScope,
            quota_pool AS quotaPool
     FROM session_ends WHERE session_id = ?`,
  );
  return (sessionId, at) => {
    const tombstone = tombstoneRow.get(sessionId);
    if (!tombstone || tombstone.at <= at - TOMBSTONE_TTL_MS) return null;
    return { kind: 'ended', end: toSessionEnd(tombstone) };
  };
}

import {
  type AdmitRequest,
  type AdmitResult,
  admitResult,
  DEFAULT_POOL,
  type LiveSession,
  type LoginDecision,
  planAdmission,
  type SessionRecord,
  type SessionRegistry,
} from '@storm-lab/session-policy';
import { and, asc, count, eq, gt, isNull, lte, ne, or } from 'drizzle-orm';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { ClientDb, Db } from '../db/client.ts';
import { type SESSION_END_REASONS, sessionEnds, sessions, users } from '../db/schema.ts';
import { isBusy } from '../ops/errors.ts';
import type { LmsUser } from '../users.ts';
import {
  type EndingReason,
  type EndOptions,
  endAllSessionsOf,
  endSessionOf,
  findLiveSession,
  liveSessionsOf,
  type SessionDetails,
  type ShortIdMatch,
} from './session-admin.ts';
import { createAuthHashCheck } from './session-auth-hash.ts';
import { admissionRows, evictionEnds, loginRows } from './session-rows.ts';
import { createUpstreamAdmission } from './upstream-admission.ts';

/** Why a session that a cookie names is gone, as the 403 body reports it. */
export interface SessionEnd {
  reason: StoredEndReason | 'expired';
  /** Milliseconds since the epoch. */
  at: number;
  /** For an eviction: which login ended it and the quota it enforced (see EvictionDetail). */
  eviction?: {
    byInstance: string | null;
    /** The evicting session's short id (8 hex digits). */
    bySession: string;
    quota: Quota | null;
  };
}

/** The evicting login's quota: sessions of its pool after the login, and the pool's limit. */
export interface Quota {
  used: number;
  max: number;
  scope: 'account' | 'instance';
  /** `default`, or `path:<text>` under a rule with a `path`. */
  pool: string;
}

/** Why a session ended, as its tombstone keeps it (see SESSION_END_REASONS). */
export type StoredEndReason = (typeof SESSION_END_REASONS)[number];

/**
 * What a cookie's session id resolves to: a live session (with its user), a known end, or
 * nothing. `endedNow` is set when this lookup itself ended the session (its user's password
 * changed since its login), naming the account for the log.
 */
export type SessionLookup =
  | { kind: 'live'; sessionId: string; userId: string; instanceId: string | null; user: LmsUser }
  | { kind: 'ended'; end: SessionEnd; endedNow?: { username: string } }
  | { kind: 'none' };

/**
 * A login's admission: besides the policy step, what the login writes in the same transaction,
 * so that a failure anywhere leaves the user's sessions as they were.
 */
export interface LoginAdmitRequest extends AdmitRequest {
  /** The session this client logs in from; it ends once the new one is admitted. */
  replacing?: string | null;
  /** Written to the user's `last_login` when admitted (milliseconds since the epoch). */
  lastLoginAt?: number;
  /** Recorded with the new session, for its user's and staff's session lists. */
  client?: LoginClient;
  /**
   * The session auth hash (`sessionAuthHash`) of the password hash the login was checked against (not the one
   * stored when the session is written: a password changed during the check must still end
   * it). A request whose user's password hash no longer gives it is refused (`password-change`).
   */
  authHash: string;
}

/** Where a login came from, as its session records it. */
export interface LoginClient {
  /** `User-Agent`, already cut to 256 characters; null when none was sent. */
  userAgent: string | null;
  /** The client address as the login throttle reads it (see clientAddress). */
  address: string | null;
}

/**
 * Where the LMS keeps sessions: the session-policy registry (atomic admission) plus what the
 * request path, the sessions API, staff and the CLI need. Every ending is remembered with its
 * reason (and who ended it) for a day, so the cookie's next request is told.
 */
export interface SessionStore extends SessionRegistry {
  admit(request: LoginAdmitRequest): Promise<AdmitResult>;
  /**
   * Resolves a session id on every request, with its user and groups; refreshes the session's
   * last use at most once a minute. A session whose user's password changed since its login
   * (its auth hash no longer matches) is ended there, reason `password-change`, and refused.
   */
  lookup(sessionId: string): Promise<SessionLookup>;
  /**
   * Ends a session on logout and remembers that its own user ended it (`ended_by`). False when
   * it was not there.
   */
  end(sessionId: string, reason: 'logged-out'): Promise<boolean>;
  /** A user's live sessions, oldest first, as the sessions lists show them. */
  details(userId: string): Promise<SessionDetails[]>;
  /** The user's live session whose id starts with `short` (the short id of logs and lists). */
  findShort(userId: string, short: string): Promise<ShortIdMatch>;
  /** Ends one live session of the user; false when it is gone or someone else's. */
  endOne(
    userId: string,
    sessionId: string,
    reason: EndingReason,
    options?: Pick<EndOptions, 'endedBy'>,
  ): Promise<boolean>;
  /** Ends every live session of the user (but `except`); resolves with how many ended. */
  endAll(userId: string, reason: EndingReason, options?: EndOptions): Promise<number>;
  /** Live sessions per user id, for users that have any (the dashboard's accounts table). */
  liveCounts(): Promise<Map<string, number>>;
  /** Deletes expired sessions and day-old tombstones; does nothing if it ran in the last minute. */
  prune(): void;
}

export interface SessionStoreOptions {
  db: ClientDb;
  ttlMs: number;
  now: () => number;
  /**
   * `atomic` (default): one IMMEDIATE transaction per admission. `upstream`: edx-platform's
   * unlocked steps (see {@link createUpstreamAdmission}), to show its race.
   */
  enforcement?: 'atomic' | 'upstream';
  /**
   * Runs the per-request lookup; the app passes its tick batcher, which answers the lookups of
   * one tick in one read transaction. Default: at once.
   */
  read?: <T>(op: () => T) => Promise<T>;
  /**
   * Runs a request's own write (ending a session refused for a password change), a
   * better-sqlite3 transaction. Default: at once, waiting on timers while another process holds
   * the lock.
   */
  write?: <T>(op: () => T) => Promise<T>;
}

/** How long the reason a session ended is remembered. */
export const TOMBSTONE_TTL_MS = 24 * 60 * 60 * 1000;
// Writing last_seen_at on every request would turn every read into a write.
const TOUCH_INTERVAL_MS = 60_000;
// Pruning scans the whole table; a login storm must not do it thousands of times a minute.
const PRUNE_INTERVAL_MS = 60_000;

/** The row of {@link LOOKUP_SQL}. */
interface LookupRow {
  userId: string;
  expiresAt: number;
  lastSeenAt: number;
  instanceId: string | null;
  /** The session auth hash the login recorded; null before migration 0009. */
  authHash: string | null;
  username: string;
  /** The user's stored password hash, for the session auth hash. */
  password: string;
  isStaff: number;
  isActive: number;
  /** JSON array of the user's group names. */
  groups: string;
}

// Every request runs this: session, user and groups in one statement, prepared once per store.
const LOOKUP_SQL = `
  SELECT s.user_id AS userId, s.expires_at AS expiresAt, s.last_seen_at AS lastSeenAt,
         s.instance_id AS instanceId, s.auth_hash AS authHash, u.username, u.password,
         u.is_staff AS isStaff, u.is_active AS isActive,
         (SELECT json_group_array(g.name) FROM user_groups ug JOIN groups g ON g.id = ug.group_id
           WHERE ug.user_id = s.user_id) AS groups
  FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE s.id = ?`;

export function toUser(
  id: string,
  row: Pick<LookupRow, 'username' | 'isStaff' | 'isActive' | 'groups'>,
): LmsUser {
  // Sorted in JavaScript, as groupsOf does, so both give the same order for any name.
  const groups = (JSON.parse(row.groups) as string[]).sort();
  return {
    id,
    username: row.username,
    isStaff: row.isStaff === 1,
    isActive: row.isActive === 1,
    groups,
  };
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
 * Reads why a session ended from its tombstone (`session_ends`), for a day after it ended; null
 * when there is none.
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

function toRecord(row: typeof sessions.$inferSelect): SessionRecord {
  return {
    id: row.id,
    userId: row.userId,
    createdAt: row.createdAt,
    instanceId: row.instanceId,
    tracked: row.tracked,
    pool: row.pool,
  };
}

/**
 * The evicting login's pool right after its evictions: the sessions its rule counts (all of the
 * account's, or one instance's) and the rule's limit.
 */
export function quotaAfter(
  decision: LoginDecision,
  live: readonly LiveSession[],
  evicted: number,
  request: LoginAdmitRequest,
): Quota | null {
  if (decision.outcome !== 'allow') return null;
  const { scope, maxSessions, pool } = decision.rule;
  // The session this client logs in from ends with the login and is not counted (see login.ts).
  const competing = live.filter(
    (session) =>
      session.id !== request.replacing &&
      (session.pool ?? DEFAULT_POOL) === pool &&
      (scope === 'account' || session.instanceId === request.session.instanceId),
  );
  return { used: competing.length - evicted + 1, max: maxSessions, scope, pool };
}

/**
 * Creates the SQLite session store. `admit` runs in one IMMEDIATE transaction, so reading the
 * tracked sessions, deciding, deleting, recording, writing the profile slot and (for a login)
 * ending the replaced session and writing `last_login` are atomic even when several processes
 * share the database file.
 *
 * @example
 * const store = createSessionStore({ db, ttlMs: 14 * 86_400_000, now: Date.now });
 * const result = await store.admit({ userId, session, decide });
 */
export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const { db, ttlMs, now } = options;
  const read = options.read ?? (async <T>(op: () => T) => op());
  const write = options.write ?? whenNotBusy;
  const admitUpstream =
    options.enforcement === 'upstream' ? createUpstreamAdmission({ db, ttlMs }) : null;
  let lastPruneAt: number | null = null;
  const lookupRow = db.$client.prepare<[string], LookupRow>(LOOKUP_SQL);
  const authHashMatches = createAuthHashCheck();
  const rows = loginRows(db);
  const admission = admissionRows(db);
  const endedReason = tombstoneReader(db);
  const touch = db.$client.prepare<[number, string]>(
    'UPDATE sessions SET last_seen_at = ? WHERE id = ?',
  );

  /**
   * Ends the user's live sessions of an older password (an auth hash other than this login's):
   * refused on their next request anyway, but until then they count toward a limit, and a
   * password changed where their store was not reached must not lock the user out.
   */
  function endStale(tx: Db, request: LoginAdmitRequest, at: number): number {
    // Called as a plain SessionRegistry (the conformance suite), a request carries no hash.
    if (typeof request.authHash !== 'string') return 0;
    const stale = tx
      .select({ id: sessions.id })
      .from(sessions)
      .where(
        and(
          eq(sessions.userId, request.userId),
          gt(sessions.expiresAt, at),
          or(isNull(sessions.authHash), ne(sessions.authHash, request.authHash)),
        ),
      )
      .all();
    for (const { id } of stale) endSessionOf(tx, request.userId, id, 'password-change', at);
    return stale.length;
  }

  // better-sqlite3's own transaction, made once: a drizzle transaction builds a query API
  // object on every call, which a storm pays on every login. Its statements are prepared.
  const admitTransaction = db.$client.transaction((request: LoginAdmitRequest): AdmitResult => {
    const at = request.session.createdAt;
    let live = admission.liveTracked(request.userId, at);
    let decision = request.decide(live);
    // Only a denial pays for the look: an eviction would end a stale session anyway.
    if (decision.outcome === 'deny' && endStale(db, request, at) > 0) {
      live = admission.liveTracked(request.userId, at);
      decision = request.decide(live);
    }
    const plan = planAdmission(decision);
    if (!plan.admit) return admitResult(decision, plan);
    if (plan.deleteIds.length > 0) {
      for (const id of plan.deleteIds) admission.remove(id);
      const quota = quotaAfter(decision, live, plan.deleteIds.length, request);
      rows.ends(evictionEnds(plan.deleteIds, request, at, quota));
    }
    admission.insert({
      id: request.session.id,
      userId: request.userId,
      createdAt: at,
      expiresAt: at + ttlMs,
      lastSeenAt: at,
      instanceId: request.session.instanceId,
      tracked: plan.track,
      userAgent: request.client?.userAgent ?? null,
      address: request.client?.address ?? null,
      pool: plan.pool,
      authHash: request.authHash ?? null,
    });
    if (plan.track) rows.slot(request.userId, request.session.id);
    if (request.replacing) admission.remove(request.replacing);
    if (request.lastLoginAt !== undefined) rows.lastLogin(request.userId, request.lastLoginAt);
    return admitResult(decision, plan);
  });
  const admitNow = (request: LoginAdmitRequest) => admitTransaction.immediate(request);

  function touchUnlessBusy(at: number, sessionId: string): void {
    try {
      touch.run(at, sessionId);
    } catch (error) {
      // Another process holds the write lock (inside a shared read transaction SQLite does not
      // wait for it). last_seen_at is advisory: the session's next request refreshes it.
      if (!isBusy(error)) throw error;
    }
  }

  /** A lookup, or a session to end because its user's password changed since its login. */
  type Looked = SessionLookup | { kind: 'stale'; userId: string; username: string; at: number };

  function lookupNow(sessionId: string): Looked {
    const at = now();
    const row = lookupRow.get(sessionId);
    if (!row) return endedReason(sessionId, at) ?? { kind: 'none' };
    if (row.expiresAt <= at) {
      return { kind: 'ended', end: { reason: 'expired', at: row.expiresAt } };
    }
    if (!authHashMatches(row.authHash, row.password)) {
      return { kind: 'stale', userId: row.userId, username: row.username, at };
    }
    if (at - row.lastSeenAt >= TOUCH_INTERVAL_MS) touchUnlessBusy(at, sessionId);
    return {
      kind: 'live',
      sessionId,
      userId: row.userId,
      instanceId: row.instanceId,
      user: toUser(row.userId, row),
    };
  }

  // A logout is its own user's doing: the record names them.
  function endNow(sessionId: string, reason: 'logged-out'): boolean {
    return db.transaction((tx) => {
      const row = tx.delete(sessions).where(eq(sessions.id, sessionId)).returning().get();
      if (!row) return false;
      const endedBy =
        tx.select({ username: users.username }).from(users).where(eq(users.id, row.userId)).get()
          ?.username ?? null;
      tx.insert(sessionEnds)
        .values({ sessionId, userId: row.userId, reason, at: now(), endedBy })
        .onConflictDoNothing()
        .run();
      return true;
    });
  }

  return {
    async admit(request) {
      if (admitUpstream) {
        const result = await admitUpstream(request);
        // Upstream's steps know nothing of these: one more step after them, as unlocked.
        const { client } = request;
        if (result.admitted && client) {
          await whenNotBusy(() =>
            db.update(sessions).set(client).where(eq(sessions.id, request.session.id)).run(),
          );
        }
        return result;
      }
      // Another LMS process may hold the write lock: wait on timers, not on the event loop.
      return whenNotBusy(() => admitNow(request));
    },
    async list(userId) {
      return db
        .select()
        .from(sessions)
        .where(and(eq(sessions.userId, userId), gt(sessions.expiresAt, now())))
        .orderBy(asc(sessions.createdAt), asc(sessions.id))
        .all()
        .map(toRecord);
    },
    async remove(sessionId) {
      return db.delete(sessions).where(eq(sessions.id, sessionId)).run().changes > 0;
    },
    async lookup(sessionId) {
      const looked = await read(() => lookupNow(sessionId));
      if (looked.kind !== 'stale') return looked;
      // Outside the read: the batch's read transaction cannot write.
      const { userId, username, at } = looked;
      const ended = await write(() => endSessionOf(db, userId, sessionId, 'password-change', at));
      return passwordChanged(at, ended ? username : null);
    },
    async end(sessionId, reason) {
      return endNow(sessionId, reason);
    },
    async details(userId) {
      return liveSessionsOf(db, userId, now());
    },
    async findShort(userId, short) {
      return findLiveSession(db, userId, short, now());
    },
    async endOne(userId, sessionId, reason, endOptions) {
      return endSessionOf(db, userId, sessionId, reason, now(), endOptions);
    },
    async endAll(userId, reason, endOptions) {
      return endAllSessionsOf(db, userId, reason, now(), endOptions);
    },
    async liveCounts() {
      const rows = db
        .select({ userId: sessions.userId, live: count() })
        .from(sessions)
        .where(gt(sessions.expiresAt, now()))
        .groupBy(sessions.userId)
        .all();
      return new Map(rows.map((row) => [row.userId, row.live]));
    },

    prune() {
      const at = now();
      if (lastPruneAt !== null && at - lastPruneAt < PRUNE_INTERVAL_MS) return;
      lastPruneAt = at;
      try {
        db.transaction((tx) => {
          tx.delete(sessions).where(lte(sessions.expiresAt, at)).run();
          tx.delete(sessionEnds)
            .where(lte(sessionEnds.at, at - TOMBSTONE_TTL_MS))
            .run();
        });
      } catch (error) {
        // Another process holds the write lock: pruning is housekeeping, the next one does it.
        if (!isBusy(error)) throw error;
        lastPruneAt = null;
      }
    },
  };
}

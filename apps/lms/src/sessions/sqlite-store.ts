import {
  type AdmissionPlan,
  type AdmitResult,
  admitResult,
  planAdmission,
  type SessionRecord,
} from '@storm-lab/session-policy';
import { and, asc, count, eq, gt, isNull, lte, ne, or } from 'drizzle-orm';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { ClientDb, Db } from '../db/client.ts';
import { sessionEnds, sessions, users } from '../db/schema.ts';
import { isBusy } from '../ops/errors.ts';
import { evictionEnds, loginRows, quotaOf } from './login-rows.ts';
import {
  createSessionCheck,
  passwordChanged,
  SESSION_LOOKUP_SQL,
  type SessionRow,
  tombstoneReader,
} from './lookup.ts';
import { createPruner } from './shared.ts';
import {
  admissionRows,
  endAllSessionsOf,
  endSessionOf,
  findLiveSession,
  liveSessionsOf,
} from './sqlite-rows.ts';
import {
  type LoginAdmitRequest,
  type SessionLookup,
  type SessionStore,
  type SessionStoreOptions,
  TOMBSTONE_TTL_MS,
} from './store.ts';
import { createUpstreamAdmission, type UpstreamSessions, upstreamStep } from './upstream.ts';

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

/** The row of a session a login admitted as `plan` says, with its client and auth hash. */
function sessionRow(
  request: LoginAdmitRequest,
  plan: AdmissionPlan,
  ttlMs: number,
): typeof sessions.$inferSelect {
  const at = request.session.createdAt;
  return {
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
  };
}

/**
 * Ends the user's live sessions of an older password (an auth hash other than this login's):
 * refused on their next request anyway, but until then they count toward a limit, and a
 * password changed where their store was not reached must not lock the user out.
 */
function endStale(db: Db, request: LoginAdmitRequest, at: number): number {
  // Called as a plain SessionRegistry (the conformance suite), a request carries no hash.
  if (typeof request.authHash !== 'string') return 0;
  const stale = db
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
  for (const { id } of stale) endSessionOf(db, request.userId, id, 'password-change', at);
  return stale.length;
}

/**
 * The atomic admission: better-sqlite3's own IMMEDIATE transaction, made once (a drizzle
 * transaction builds a query API object on every call, which a storm pays on every login),
 * of statements prepared once.
 */
function atomicAdmission(db: ClientDb, ttlMs: number) {
  const rows = loginRows(db);
  const admission = admissionRows(db);
  const transaction = db.$client.transaction((request: LoginAdmitRequest): AdmitResult => {
    const at = request.session.createdAt;
    let decision = request.decide(admission.liveTracked(request.userId, at));
    // Only a denial pays for the look: an eviction would end a stale session anyway.
    if (decision.outcome === 'deny' && endStale(db, request, at) > 0) {
      decision = request.decide(admission.liveTracked(request.userId, at));
    }
    const plan = planAdmission(decision);
    if (!plan.admit) return admitResult(decision, plan);
    if (plan.deleteIds.length > 0) {
      for (const id of plan.deleteIds) admission.remove(id);
      const quota = quotaOf(decision, plan.deleteIds.length);
      rows.ends(evictionEnds(plan.deleteIds, request, at, quota));
    }
    admission.insert(sessionRow(request, plan, ttlMs));
    if (plan.track) rows.slot(request.userId, request.session.id);
    if (request.replacing) admission.remove(request.replacing);
    if (request.lastLoginAt !== undefined) rows.lastLogin(request.userId, request.lastLoginAt);
    return admitResult(decision, plan);
  });
  // Another LMS process may hold the write lock: wait on timers, not on the event loop.
  return (request: LoginAdmitRequest) => whenNotBusy(() => transaction.immediate(request));
}

/** The SQLite store's part of upstream enforcement: each step its own transaction. */
function upstreamSessions(db: ClientDb, ttlMs: number): UpstreamSessions {
  const rows = loginRows(db);
  return {
    save: (request, _decision, plan) =>
      upstreamStep(db, (tx) => {
        tx.insert(sessions)
          .values(sessionRow(request, plan, ttlMs))
          .run();
        if (request.replacing) tx.delete(sessions).where(eq(sessions.id, request.replacing)).run();
        if (request.lastLoginAt !== undefined) rows.lastLogin(request.userId, request.lastLoginAt);
      }),
    async evict(old, request) {
      const row = await upstreamStep(db, (tx) => {
        const deleted = tx.delete(sessions).where(eq(sessions.id, old)).returning().get();
        if (deleted) rows.ends(evictionEnds([old], request, request.session.createdAt, null));
        return deleted;
      });
      return row ? { id: row.id, createdAt: row.createdAt, instanceId: row.instanceId } : null;
    },
  };
}

/**
 * Creates the SQLite session store. `admit` runs in one IMMEDIATE transaction, so reading the
 * tracked sessions, deciding, deleting, recording, writing the profile slot and (for a login)
 * ending the replaced session and writing `last_login` are atomic even when several processes
 * share the database file.
 *
 * @example
 * const store = createSqliteSessionStore({ db, ttlMs: 14 * 86_400_000, now: Date.now });
 * const result = await store.admit({ userId, session, decide });
 */
export function createSqliteSessionStore(options: SessionStoreOptions): SessionStore {
  const { db, ttlMs, now } = options;
  const read = options.read ?? (async <T>(op: () => T) => op());
  const write = options.write ?? whenNotBusy;
  const admit =
    options.enforcement === 'upstream'
      ? createUpstreamAdmission(db, upstreamSessions(db, ttlMs))
      : atomicAdmission(db, ttlMs);
  const lookupRow = db.$client.prepare<[string], SessionRow>(SESSION_LOOKUP_SQL);
  const check = createSessionCheck();
  const endedReason = tombstoneReader(db);
  const touch = db.$client.prepare<[number, string]>(
    'UPDATE sessions SET last_seen_at = ? WHERE id = ?',
  );

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
    const checked = check(sessionId, row, row, at);
    if (checked.kind === 'stale') {
      return { kind: 'stale', userId: row.userId, username: checked.username, at };
    }
    if (checked.touch) touchUnlessBusy(at, sessionId);
    return checked.lookup;
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
    admit,
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
    prune: createPruner(now, (at) =>
      db.transaction((tx) => {
        tx.delete(sessions).where(lte(sessions.expiresAt, at)).run();
        tx.delete(sessionEnds)
          .where(lte(sessionEnds.at, at - TOMBSTONE_TTL_MS))
          .run();
      }),
    ),
  };
}

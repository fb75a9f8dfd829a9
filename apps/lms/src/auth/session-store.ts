import {
  type AdmitRequest,
  type AdmitResult,
  admitResult,
  type LiveSession,
  planAdmission,
  type SessionRecord,
  type SessionRegistry,
} from '@storm-lab/session-policy';
import { and, asc, eq, gt, inArray, lte, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { profiles, sessionEnds, sessions } from '../db/schema.ts';

/** Why a session that a cookie names is gone, as the 403 body reports it. */
export interface SessionEnd {
  reason: 'evicted' | 'logged-out' | 'expired';
  /** Milliseconds since the epoch. */
  at: number;
}

/** What a cookie's session id resolves to: a live session, a known end, or nothing. */
export type SessionLookup =
  | { kind: 'live'; sessionId: string; userId: string; instanceId: string | null }
  | { kind: 'ended'; end: SessionEnd }
  | { kind: 'none' };

/** The session-policy registry on SQLite, plus what the request path needs. */
export interface SessionStore extends SessionRegistry {
  /** Resolves a session id on every request; refreshes `last_seen_at` at most once a minute. */
  lookup(sessionId: string): SessionLookup;
  /** Ends a session for a reason (logout) and remembers why. False when it was not there. */
  end(sessionId: string, reason: 'evicted' | 'logged-out'): boolean;
  /** Deletes expired sessions and day-old tombstones; does nothing if it ran in the last minute. */
  prune(): void;
}

export interface SessionStoreOptions {
  db: Db;
  ttlMs: number;
  now: () => number;
}

/** How long the reason a session ended is remembered. */
export const TOMBSTONE_TTL_MS = 24 * 60 * 60 * 1000;
// Writing last_seen_at on every request would turn every read into a write.
const TOUCH_INTERVAL_MS = 60_000;
// Pruning scans the whole table; a login storm must not do it thousands of times a minute.
const PRUNE_INTERVAL_MS = 60_000;

function toRecord(row: typeof sessions.$inferSelect): SessionRecord {
  return {
    id: row.id,
    userId: row.userId,
    createdAt: row.createdAt,
    instanceId: row.instanceId,
    tracked: row.tracked,
  };
}

/**
 * Creates the SQLite session store. `admit` runs in one IMMEDIATE transaction, so reading the
 * tracked sessions, deciding, deleting, recording and writing the profile slot are atomic even
 * when several processes share the database file.
 *
 * @example
 * const store = createSessionStore({ db, ttlMs: 14 * 86_400_000, now: Date.now });
 * const result = await store.admit({ userId, session, decide });
 */
export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const { db, ttlMs, now } = options;
  let lastPruneAt: number | null = null;

  function liveTracked(tx: Db, userId: string, at: number): LiveSession[] {
    return tx
      .select({ id: sessions.id, createdAt: sessions.createdAt, instanceId: sessions.instanceId })
      .from(sessions)
      .where(
        and(eq(sessions.userId, userId), eq(sessions.tracked, true), gt(sessions.expiresAt, at)),
      )
      .orderBy(asc(sessions.createdAt), asc(sessions.id))
      .all();
  }

  function recordSlot(tx: Db, userId: string, sessionId: string): void {
    // As upstream's receiver: the profile's meta.session_id names the newest tracked session.
    tx.insert(profiles)
      .values({ userId, meta: JSON.stringify({ session_id: sessionId }) })
      .onConflictDoUpdate({
        target: profiles.userId,
        set: { meta: sql`json_set(${profiles.meta}, '$.session_id', ${sessionId})` },
      })
      .run();
  }

  function admitNow(request: AdmitRequest): AdmitResult {
    return db.transaction(
      (tx) => {
        const at = request.session.createdAt;
        const decision = request.decide(liveTracked(tx, request.userId, at));
        const plan = planAdmission(decision);
        if (!plan.admit) return admitResult(decision, plan);
        if (plan.deleteIds.length > 0) {
          tx.delete(sessions)
            .where(inArray(sessions.id, [...plan.deleteIds]))
            .run();
          tx.insert(sessionEnds)
            .values(
              plan.deleteIds.map((id) => ({
                sessionId: id,
                userId: request.userId,
                reason: 'evicted' as const,
                at,
              })),
            )
            .onConflictDoNothing()
            .run();
        }
        tx.insert(sessions)
          .values({
            id: request.session.id,
            userId: request.userId,
            createdAt: at,
            expiresAt: at + ttlMs,
            lastSeenAt: at,
            instanceId: request.session.instanceId,
            tracked: plan.track,
          })
          .run();
        if (plan.track) recordSlot(tx, request.userId, request.session.id);
        return admitResult(decision, plan);
      },
      { behavior: 'immediate' },
    );
  }

  function endedReason(sessionId: string, at: number): SessionLookup {
    const tombstone = db
      .select()
      .from(sessionEnds)
      .where(eq(sessionEnds.sessionId, sessionId))
      .get();
    if (!tombstone || tombstone.at <= at - TOMBSTONE_TTL_MS) return { kind: 'none' };
    return { kind: 'ended', end: { reason: tombstone.reason, at: tombstone.at } };
  }

  return {
    async admit(request) {
      return admitNow(request);
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
    lookup(sessionId) {
      const at = now();
      const row = db.select().from(sessions).where(eq(sessions.id, sessionId)).get();
      if (!row) return endedReason(sessionId, at);
      if (row.expiresAt <= at) {
        return { kind: 'ended', end: { reason: 'expired', at: row.expiresAt } };
      }
      if (at - row.lastSeenAt >= TOUCH_INTERVAL_MS) {
        db.update(sessions).set({ lastSeenAt: at }).where(eq(sessions.id, sessionId)).run();
      }
      return { kind: 'live', sessionId: row.id, userId: row.userId, instanceId: row.instanceId };
    },
    end(sessionId, reason) {
      return db.transaction((tx) => {
        const row = tx.delete(sessions).where(eq(sessions.id, sessionId)).returning().get();
        if (!row) return false;
        tx.insert(sessionEnds)
          .values({ sessionId, userId: row.userId, reason, at: now() })
          .onConflictDoNothing()
          .run();
        return true;
      });
    },
    prune() {
      const at = now();
      if (lastPruneAt !== null && at - lastPruneAt < PRUNE_INTERVAL_MS) return;
      lastPruneAt = at;
      db.delete(sessions).where(lte(sessions.expiresAt, at)).run();
      db.delete(sessionEnds)
        .where(lte(sessionEnds.at, at - TOMBSTONE_TTL_MS))
        .run();
    },
  };
}

import type { AdmitResult } from '@storm-lab/session-policy';
import {
  createRedisSessionRegistry,
  type RedisSessionRegistry,
} from '@storm-lab/session-policy/redis';
import { eq, isNotNull, lte } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { shortId } from '../auth/tokens.ts';
import { whenNotBusy } from '../db/busy-retry.ts';
import { sessionEnds, users } from '../db/schema.ts';
import { evictionEnds, loginRows, quotaOf } from './login-rows.ts';
import {
  createSessionCheck,
  passwordChanged,
  tombstoneReader,
  USER_LOOKUP_SQL,
  type UserRow,
} from './lookup.ts';
import { createPruner, isShortId, shortIdMatch } from './shared.ts';
import {
  type EndingReason,
  type LoginAdmitRequest,
  type SessionLookup,
  type SessionStore,
  type SessionStoreOptions,
  TOMBSTONE_TTL_MS,
} from './store.ts';
import { createUpstreamAdmission, type UpstreamSessions } from './upstream.ts';

export interface RedisSessionStoreOptions extends SessionStoreOptions {
  redis: Redis;
  /** Put before every Redis key; default `lms:`. */
  prefix?: string;
}

/** Users whose sessions `liveCounts` lists at once. */
const COUNT_BATCH = 64;

/** Sessions ended by hand or for a password change, for their tombstones. */
type Ended = Array<{ sessionId: string; userId: string }>;

/**
 * What a session keeps besides the registry's own fields: the login's client (for the session
 * lists) and its session auth hash (checked on every request).
 */
function attributesOf(request: LoginAdmitRequest): Record<string, string> {
  const attributes: Record<string, string> = {};
  const { client } = request;
  if (client?.userAgent != null) attributes.userAgent = client.userAgent;
  if (client?.address != null) attributes.address = client.address;
  if (request.authHash != null) attributes.authHash = request.authHash;
  return attributes;
}

/**
 * The Redis store's part of upstream enforcement: the session in Redis (the registry told the
 * decision, so it evicts nothing itself), then the replaced one and `last_login`, each its own
 * step, as Django's cache session backend and its database are.
 */
function upstreamSessions(
  options: RedisSessionStoreOptions,
  registry: RedisSessionRegistry,
): UpstreamSessions {
  const rows = loginRows(options.db);
  return {
    async save(request, decision) {
      const { userId, session } = request;
      await registry.admit({
        userId,
        session: { ...session, attributes: attributesOf(request) },
        decide: () => decision,
      });
      if (request.replacing) await registry.remove(request.replacing);
      const { lastLoginAt } = request;
      if (lastLoginAt !== undefined) await whenNotBusy(() => rows.lastLogin(userId, lastLoginAt));
    },
    async evict(old, request) {
      const gone = await registry.get(old);
      if (!(await registry.remove(old))) return null;
      const at = request.session.createdAt;
      await whenNotBusy(() => rows.ends(evictionEnds([old], request, at, null)));
      return gone && { id: old, createdAt: gone.createdAt, instanceId: gone.instanceId };
    },
  };
}

/**
 * The session store on Redis, as Django's cache session backend keeps sessions in a cache
 * shared by every worker: lookup, admission and eviction go through the session-policy Redis
 * registry (one atomic step per login across any number of processes). Users, groups, the
 * profile slot, `last_login` and the reasons sessions ended stay in SQLite, as edx-platform
 * keeps them in its database; they are written right after the Redis step.
 *
 * A session Redis let expire is gone without a trace, as in Django's cache backend: its cookie
 * is told `none`, not `expired`.
 *
 * @example
 * const store = createRedisSessionStore({ db, redis: new Redis(url), ttlMs, now: Date.now });
 */
export function createRedisSessionStore(options: RedisSessionStoreOptions): SessionStore {
  const { db, redis, ttlMs, now } = options;
  const read = options.read ?? (async <T>(op: () => T) => op());
  const write = options.write ?? whenNotBusy;
  const registry = createRedisSessionRegistry(redis, {
    prefix: options.prefix ?? 'lms:',
    sessionTtlMs: ttlMs,
    evictionRecordTtlMs: TOMBSTONE_TTL_MS,
    now,
  });
  const userRow = db.$client.prepare<[string], UserRow>(USER_LOOKUP_SQL);
  const check = createSessionCheck();
  const rows = loginRows(db);
  const endedReason = tombstoneReader(db);
  const admitUpstream =
    options.enforcement === 'upstream'
      ? createUpstreamAdmission(db, upstreamSessions(options, registry))
      : null;

  /** What the login wrote besides the session, in SQLite, in one transaction. */
  function recordLogin(
    request: LoginAdmitRequest,
    result: Extract<AdmitResult, { admitted: true }>,
  ): Promise<void> {
    const at = request.session.createdAt;
    const record = db.$client.transaction(() => {
      if (!result.dryRun && result.evicted.length > 0) {
        const ids = result.evicted.map((session) => session.id);
        rows.ends(evictionEnds(ids, request, at, quotaOf(result.decision, ids.length)));
      }
      if (result.tracked) rows.slot(request.userId, request.session.id);
      if (request.lastLoginAt !== undefined) rows.lastLogin(request.userId, request.lastLoginAt);
    });
    return write(record);
  }

  function remember(
    ended: Ended,
    reason: 'logged-out' | EndingReason,
    endedBy: string | null,
    at = now(),
  ): Promise<void> {
    if (ended.length === 0) return Promise.resolve();
    const insert = db.$client.transaction(() => {
      db.insert(sessionEnds)
        .values(ended.map((row) => ({ ...row, reason, at, endedBy })))
        .onConflictDoNothing()
        .run();
    });
    return write(insert);
  }

  async function ownedBy(userId: string, sessionId: string): Promise<boolean> {
    const session = await registry.get(sessionId);
    return session !== null && session.userId === userId;
  }

  /**
   * Ends the user's live sessions of an older password (an auth hash other than this login's),
   * as the SQLite store does before it denies a login: they are refused on their next request
   * anyway, but a password changed where this Redis was not reached must not lock the user out.
   */
  async function endStale(request: LoginAdmitRequest): Promise<number> {
    // Called as a plain SessionRegistry (the conformance suite), a request carries no hash.
    if (typeof request.authHash !== 'string') return 0;
    const stale = (await registry.list(request.userId)).filter(
      (session) => session.attributes.authHash !== request.authHash,
    );
    const ended: Ended = [];
    for (const session of stale) {
      if (await registry.remove(session.id)) {
        ended.push({ sessionId: session.id, userId: request.userId });
      }
    }
    await remember(ended, 'password-change', null, request.session.createdAt);
    return ended.length;
  }

  async function admitAtomic(request: LoginAdmitRequest): Promise<AdmitResult> {
    const result = await registry.admit({
      userId: request.userId,
      session: { ...request.session, attributes: attributesOf(request) },
      // With the limit, the registry decides in one script and calls `decide` once, after.
      ...(request.limit && { limit: request.limit }),
      decide: request.decide,
    });
    if (!result.admitted) return result;
    await recordLogin(request, result);
    if (request.replacing) await registry.remove(request.replacing);
    return result;
  }

  /** Why a session Redis does not hold is gone: its tombstone, else Redis's eviction record. */
  async function whyGone(sessionId: string, at: number): Promise<SessionLookup> {
    const why = await read(() => endedReason(sessionId, at));
    if (why) return why;
    // Evicted, but the tombstone is not written yet (or was lost): Redis's record says so.
    const eviction = await registry.evictionOf(sessionId);
    if (eviction === null) return { kind: 'none' };
    const { byInstanceId: byInstance, bySessionId } = eviction;
    return {
      kind: 'ended',
      end: {
        reason: 'evicted',
        at: eviction.at,
        eviction: { byInstance, bySession: shortId(bySessionId), quota: null },
      },
    };
  }

  return {
    async admit(request) {
      if (admitUpstream) return admitUpstream(request);
      const result = await admitAtomic(request);
      // Only a denial pays for the look: an eviction would end a stale session anyway.
      if (result.admitted || (await endStale(request)) === 0) return result;
      return admitAtomic(request);
    },

    list: (userId) => registry.list(userId),
    remove: (sessionId) => registry.remove(sessionId),

    async lookup(sessionId) {
      const at = now();
      const session = await registry.get(sessionId);
      if (session === null) return whyGone(sessionId, at);
      const row = await read(() => userRow.get(session.userId));
      if (!row) return { kind: 'none' };
      const checked = check(
        sessionId,
        { ...session, authHash: session.attributes.authHash },
        row,
        at,
      );
      if (checked.kind === 'stale') {
        // Whoever changed the password may not have reached this Redis: the session ends here.
        if (!(await registry.remove(sessionId))) return passwordChanged(at, null);
        await remember([{ sessionId, userId: session.userId }], 'password-change', null, at);
        return passwordChanged(at, checked.username);
      }
      if (checked.touch) await registry.touch(sessionId, at);
      return checked.lookup;
    },

    async end(sessionId, reason) {
      const session = await registry.get(sessionId);
      if (session === null || !(await registry.remove(sessionId))) return false;
      // A logout is its own user's doing: the record names them.
      const endedBy =
        db
          .select({ username: users.username })
          .from(users)
          .where(eq(users.id, session.userId))
          .get()?.username ?? null;
      await remember([{ sessionId, userId: session.userId }], reason, endedBy);
      return true;
    },

    async details(userId) {
      return (await registry.list(userId)).map((session) => ({
        id: session.id,
        createdAt: session.createdAt,
        lastSeenAt: session.lastSeenAt,
        instanceId: session.instanceId,
        userAgent: session.attributes.userAgent ?? null,
        address: session.attributes.address ?? null,
        tracked: session.tracked,
        pool: session.pool,
      }));
    },

    async findShort(userId, short) {
      if (!isShortId(short)) return { kind: 'none' };
      const ids = (await registry.list(userId)).map((session) => session.id);
      return shortIdMatch(ids.filter((id) => id.startsWith(short)));
    },

    async endOne(userId, sessionId, reason, endOptions = {}) {
      if (!(await ownedBy(userId, sessionId))) return false;
      if (!(await registry.remove(sessionId))) return false;
      await remember([{ sessionId, userId }], reason, endOptions.endedBy ?? null);
      return true;
    },

    async endAll(userId, reason, endOptions = {}) {
      const ended = await registry.removeAllOf(
        userId,
        endOptions.except === undefined ? {} : { except: endOptions.except },
      );
      await remember(
        ended.map((sessionId) => ({ sessionId, userId })),
        reason,
        endOptions.endedBy ?? null,
      );
      return ended.length;
    },

    async liveCounts() {
      // Only a user who logged in can have a session: every admission writes last_login.
      const ids = db
        .select({ id: users.id })
        .from(users)
        .where(isNotNull(users.lastLogin))
        .all()
        .map((row) => row.id);
      const counts = new Map<string, number>();
      for (let start = 0; start < ids.length; start += COUNT_BATCH) {
        const batch = ids.slice(start, start + COUNT_BATCH);
        const lists = await Promise.all(batch.map((id) => registry.list(id)));
        batch.forEach((id, index) => {
          const live = lists[index]?.length ?? 0;
          if (live > 0) counts.set(id, live);
        });
      }
      return counts;
    },

    // Redis expires sessions by itself; the tombstones are SQLite's.
    prune: createPruner(now, (at) =>
      db
        .delete(sessionEnds)
        .where(lte(sessionEnds.at, at - TOMBSTONE_TTL_MS))
        .run(),
    ),
  };
}

import type { AdmitResult, LiveSession, LoginDecision } from '@storm-lab/session-policy';
import {
  createRedisSessionRegistry,
  type RedisSessionRegistry,
} from '@storm-lab/session-policy/redis';
import { eq, isNotNull, lte } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { whenNotBusy } from '../db/busy-retry.ts';
import type { ClientDb } from '../db/client.ts';
import { sessionEnds, users } from '../db/schema.ts';
import { isBusy } from '../ops/errors.ts';
import type { EndingReason } from './session-admin.ts';
import { createAuthHashCheck } from './session-auth-hash.ts';
import { evictionEnds, loginRows } from './session-rows.ts';
import {
  type LoginAdmitRequest,
  passwordChanged,
  quotaAfter,
  type SessionLookup,
  type SessionStore,
  TOMBSTONE_TTL_MS,
  tombstoneReader,
  toUser,
} from './session-store.ts';
import { shortId } from './tokens.ts';
import { setLoginSession } from './upstream-admission.ts';

export interface RedisSessionStoreOptions {
  /** The relational data: users, groups, profiles, and the tombstones of ended sessions. */
  db: ClientDb;
  redis: Redis;
  /** Put before every Redis key; default `lms:`. */
  prefix?: string;
  ttlMs: number;
  now: () => number;
  /** Runs the lookup's SQLite read (the app's tick batcher). Default: at once. */
  read?: <T>(op: () => T) => Promise<T>;
  /**
   * Runs the SQLite writes that follow a login or an ending, each a better-sqlite3 transaction
   * (the app's tick batcher, so the writes of concurrent logins share one commit). Default: at
   * once, waiting on timers while another process holds the lock.
   */
  write?: <T>(op: () => T) => Promise<T>;
  /**
   * `atomic` (default): the registry's one atomic step per login. `upstream`: edx-platform's
   * unlocked `set_login_session` steps, the session in Redis and the profile slot in SQLite
   * (see {@link admitUpstream}), to show its race across workers.
   */
  enforcement?: 'atomic' | 'upstream';
}

// As the SQLite store: last use is written at most once a minute, pruning at most once a minute.
const TOUCH_INTERVAL_MS = 60_000;
const PRUNE_INTERVAL_MS = 60_000;
const SHORT_ID_PATTERN = /^[0-9a-f]{8}$/;
/** Users whose sessions `liveCounts` lists at once. */
const COUNT_BATCH = 64;

/** A user with their groups, as the lookup needs them. */
interface UserRow {
  username: string;
  /** The stored password hash, for the session auth hash. */
  password: string;
  isStaff: number;
  isActive: number;
  /** JSON array of the user's group names. */
  groups: string;
}

const USER_SQL = `
  SELECT u.username, u.password, u.is_staff AS isStaff, u.is_active AS isActive,
         (SELECT json_group_array(g.name) FROM user_groups ug JOIN groups g ON g.id = ug.group_id
           WHERE ug.user_id = u.id) AS groups
  FROM users u WHERE u.id = ?`;

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
  const registry: RedisSessionRegistry = createRedisSessionRegistry(redis, {
    prefix: options.prefix ?? 'lms:',
    sessionTtlMs: ttlMs,
    evictionRecordTtlMs: TOMBSTONE_TTL_MS,
    now,
  });
  const userRow = db.$client.prepare<[string], UserRow>(USER_SQL);
  const authHashMatches = createAuthHashCheck();
  const rows = loginRows(db);
  const endedReason = tombstoneReader(db);
  let lastPruneAt: number | null = null;

  /** What the login wrote besides the session, in SQLite, in one transaction. */
  function recordLogin(
    request: LoginAdmitRequest,
    result: Extract<AdmitResult, { admitted: true }>,
    quota: ReturnType<typeof quotaAfter>,
  ): Promise<void> {
    const at = request.session.createdAt;
    const record = db.$client.transaction(() => {
      if (!result.dryRun && result.evicted.length > 0) {
        const ids = result.evicted.map((session) => session.id);
        rows.ends(evictionEnds(ids, request, at, quota));
      }
      if (result.tracked) rows.slot(request.userId, request.session.id);
      if (request.lastLoginAt !== undefined) rows.lastLogin(request.userId, request.lastLoginAt);
    });
    return write(record);
  }

  function remember(
    rows: Array<{ sessionId: string; userId: string }>,
    reason: 'logged-out' | EndingReason,
    endedBy: string | null,
    at = now(),
  ): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const insert = db.$client.transaction(() => {
      db.insert(sessionEnds)
        .values(rows.map((row) => ({ ...row, reason, at, endedBy })))
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
   * As edx-platform: Django's `login()` saves the new session in the cache (and `last_login`);
   * then `set_login_session` reads the profile's `meta.session_id`, deletes that one session
   * from the cache, and writes `meta` back with the new id. No lock holds across the steps, so
   * overlapping logins on any workers read the same old id and all survive. Only the flag and
   * the exemptions apply (`decide` sees no live sessions), as upstream has only those.
   */
  async function admitUpstream(request: LoginAdmitRequest): Promise<AdmitResult> {
    const { userId, session } = request;
    const at = session.createdAt;
    const decision = request.decide([]);
    if (decision.outcome === 'deny') return { admitted: false, decision };
    const saved = await registry.admit({
      userId,
      session: { ...session, attributes: attributesOf(request) },
      decide: () => decision,
    });
    if (!saved.admitted) return saved;
    if (request.replacing) await registry.remove(request.replacing);
    if (request.lastLoginAt !== undefined) {
      const lastLogin = request.lastLoginAt;
      await whenNotBusy(() => rows.lastLogin(userId, lastLogin));
    }
    // The receiver returns early for an exempt user or with the flag off.
    if (!saved.tracked) return saved;
    const evicted = await setLoginSession(db, request, async (old) => {
      const gone = await registry.get(old);
      if (!(await registry.remove(old))) return null;
      await whenNotBusy(() => rows.ends(evictionEnds([old], request, at, null)));
      return gone && { id: old, createdAt: gone.createdAt, instanceId: gone.instanceId };
    });
    return { ...saved, evicted };
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
    const ended: Array<{ sessionId: string; userId: string }> = [];
    for (const session of stale) {
      if (await registry.remove(session.id)) {
        ended.push({ sessionId: session.id, userId: request.userId });
      }
    }
    await remember(ended, 'password-change', null, request.session.createdAt);
    return ended.length;
  }

  async function admitAtomic(request: LoginAdmitRequest): Promise<AdmitResult> {
    // `decide` may run more than once (optimistic retries, without a limit): the last run is
    // the committed one.
    let committed: { decision: LoginDecision; live: readonly LiveSession[] } | null = null;
    const result = await registry.admit({
      userId: request.userId,
      session: { ...request.session, attributes: attributesOf(request) },
      // With the limit, the registry decides in one script and calls `decide` once, after.
      ...(request.limit && { limit: request.limit }),
      decide: (live) => {
        const decision = request.decide(live);
        committed = { decision, live };
        return decision;
      },
    });
    if (!result.admitted) return result;
    const seen = committed as { decision: LoginDecision; live: readonly LiveSession[] } | null;
    const quota = seen
      ? quotaAfter(seen.decision, seen.live, result.dryRun ? 0 : result.evicted.length, request)
      : null;
    await recordLogin(request, result, quota);
    if (request.replacing) await registry.remove(request.replacing);
    return result;
  }

  return {
    async admit(request) {
      if (options.enforcement === 'upstream') return admitUpstream(request);
      const result = await admitAtomic(request);
      // Only a denial pays for the look: an eviction would end a stale session anyway.
      if (result.admitted || (await endStale(request)) === 0) return result;
      return admitAtomic(request);
    },

    list: (userId) => registry.list(userId),
    remove: (sessionId) => registry.remove(sessionId),

    async lookup(sessionId): Promise<SessionLookup> {
      const at = now();
      const session = await registry.get(sessionId);
      if (session === null) {
        const why = await read(() => endedReason(sessionId, at));
        if (why) return why;
        // Evicted, but the tombstone is not written yet (or was lost): Redis's record says so.
        const eviction = await registry.evictionOf(sessionId);
        if (eviction === null) return { kind: 'none' };
        return {
          kind: 'ended',
          end: {
            reason: 'evicted',
            at: eviction.at,
            eviction: {
              byInstance: eviction.byInstanceId,
              bySession: shortId(eviction.bySessionId),
              quota: null,
            },
          },
        };
      }
      const row = await read(() => userRow.get(session.userId));
      if (!row) return { kind: 'none' };
      if (!authHashMatches(session.attributes.authHash, row.password)) {
        // Whoever changed the password may not have reached this Redis: the session ends here.
        if (!(await registry.remove(sessionId))) return passwordChanged(at, null);
        await remember([{ sessionId, userId: session.userId }], 'password-change', null, at);
        return passwordChanged(at, row.username);
      }
      if (at - session.lastSeenAt >= TOUCH_INTERVAL_MS) await registry.touch(sessionId, at);
      return {
        kind: 'live',
        sessionId,
        userId: session.userId,
        instanceId: session.instanceId,
        user: toUser(session.userId, row),
      };
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
      if (!SHORT_ID_PATTERN.test(short)) return { kind: 'none' };
      const found = (await registry.list(userId)).filter((session) => session.id.startsWith(short));
      const [first] = found;
      if (!first) return { kind: 'none' };
      return found.length > 1 ? { kind: 'ambiguous' } : { kind: 'found', sessionId: first.id };
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

    prune() {
      // Redis expires sessions by itself; the tombstones are SQLite's.
      const at = now();
      if (lastPruneAt !== null && at - lastPruneAt < PRUNE_INTERVAL_MS) return;
      lastPruneAt = at;
      try {
        db.delete(sessionEnds)
          .where(lte(sessionEnds.at, at - TOMBSTONE_TTL_MS))
          .run();
      } catch (error) {
        if (!isBusy(error)) throw error;
        lastPruneAt = null;
      }
    },
  };
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { DEFAULT_POOL, type LiveSession, type LoginLimit } from './decide.ts';
import { PerUserQueue } from './per-user-queue.ts';
import { type SessionReply, type Snapshot, toDetails, toSnapshot } from './redis-replies.ts';
import {
  ATTRIBUTE_PREFIX,
  admitWithinLimit,
  commitAdmission,
  getSession,
  INDEX_SUFFIX,
  liveSessions,
  removeAllSessions,
  removeSession,
  touchSession,
} from './redis-scripts.ts';
import {
  type AdmissionPlan,
  type AdmitRequest,
  type AdmitResult,
  admitResult,
  DEFAULT_SESSION_TTL_MS,
  planAdmission,
  type ResolvingSessionRegistry,
  type SessionDetails,
} from './registry.ts';
import { SessionUserCache } from './session-user-cache.ts';

export { DEFAULT_SESSION_TTL_MS };
export const DEFAULT_EVICTION_RECORD_TTL_MS = 60 * 60 * 1000;
export const DEFAULT_MAX_ATTEMPTS = 50;
/** Session ids whose user a registry remembers, so `get` and `touch` take one round trip. */
export const DEFAULT_USER_CACHE_SIZE = 10_000;
const RETRY_BASE_MS = 1;
const RETRY_CAP_MS = 50;

export interface RedisSessionRegistryOptions {
  /** Put before every key. No `{` or `}`: they would change the Cluster hash tag. Default `sp:`. */
  prefix?: string;
  /** How long a session (and its id lookup) lives after its admission. Default 14 days. */
  sessionTtlMs?: number;
  /** How long `evictionOf` can still explain an eviction. Default 1 hour. */
  evictionRecordTtlMs?: number;
  /** Commits tried before `admit` throws {@link AdmissionConflictError}. Default 50. */
  maxAttempts?: number;
  /**
   * Pause after the failed attempt `attempt` (1-based). Default: full jitter, random up to
   * 2 ms, doubling per attempt, at most 50 ms.
   */
  retryDelayMs?: (attempt: number) => number;
  /**
   * The registry's clock, in milliseconds since the epoch: eviction records' `at`, and `now() +
   * PTTL` is a session's `expiresAt`. Default `Date.now`.
   */
  now?: () => number;
  /**
   * How many session ids this registry remembers the user of (least recently used go first),
   * so that `get` and `touch` of a session it admitted or resolved send one script and no
   * `sid:` read. 0 turns it off. Default 10 000.
   */
  userCacheSize?: number;
  /**
   * Admit a request that carries a `limit` in one script that decides and commits (true), or
   * always read, decide in JavaScript and commit with a version check (false). Requests
   * without a `limit` always take the second way. Default true.
   */
  decideInRedis?: boolean;
}

/** Why a session ended, for telling its client. */
export interface EvictionRecord {
  /** When it was evicted, in milliseconds since the epoch. */
  at: number;
  /** The instance of the login that evicted it; null when that login had none. */
  byInstanceId: string | null;
  bySessionId: string;
  reason: 'evicted';
}

/** A {@link ResolvingSessionRegistry} in Redis that can also say why a session was evicted. */
export interface RedisSessionRegistry extends ResolvingSessionRegistry {
  /** The eviction record of a session; null when it was not evicted or the record expired. */
  evictionOf(sessionId: string): Promise<EvictionRecord | null>;
}

/** `admit` kept losing the race for one user's sessions and gave up. */
export class AdmissionConflictError extends Error {
  override name = 'AdmissionConflictError';
  constructor(
    readonly userId: string,
    readonly attempts: number,
  ) {
    super(
      `admission for user "${userId}" gave up after ${attempts} attempts: the user's sessions ` +
        'changed between every read and commit (too many concurrent logins of one user)',
    );
  }
}

/** The script's decision on a `limit` differs from what the request's `decide` gives. */
export class DecisionMismatchError extends Error {
  override name = 'DecisionMismatchError';
  constructor(
    readonly userId: string,
    readonly script: string,
    readonly decide: string,
  ) {
    super(
      `admission for user "${userId}": the request's limit (applied in Redis: ${script}) and ` +
        `its decide (${decide}) disagree; the script's decision was committed. Build both ` +
        'with loginAdmission(settings, user, context)',
    );
  }
}

/** The new session's id lookup: written once before its first commit, dropped if not admitted. */
interface Lookup {
  key: string;
  written: boolean;
  /** The id is already a live session of the user (a re-admission): never drop its lookup. */
  keep: boolean;
}

/** Full jitter, as in AWS's "Exponential Backoff And Jitter" (2015). */
function jitteredDelayMs(attempt: number): number {
  return Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
}

function redisKeys(prefix: string) {
  // One hash tag per user: all keys a script touches live in one Cluster slot.
  const user = (userId: string) => `${prefix}{u:${userId}}:`;
  return {
    index: (userId: string) => `${user(userId)}${INDEX_SUFFIX}`,
    version: (userId: string) => `${user(userId)}version`,
    session: (userId: string, id: string) => `${user(userId)}s:${id}`,
    eviction: (userId: string, id: string) => `${user(userId)}evicted:${id}`,
    sid: (id: string) => `${prefix}sid:${id}`,
  };
}

function toLive({ id, createdAt, instanceId, pool, lastSeenAt }: SessionDetails): LiveSession {
  return { id, createdAt, instanceId, pool, lastSeenAt };
}

function attributeFields(attributes: Readonly<Record<string, string>> = {}): string[] {
  return Object.entries(attributes).flatMap(([name, value]) => [ATTRIBUTE_PREFIX + name, value]);
}

/**
 * A {@link SessionRegistry} in Redis, atomic per user across any number of processes. A request
 * that carries its decision as data (`limit`, from `loginAdmission` or `resolveLogin`) is
 * decided and committed by one Lua script: one round trip, never a conflict, so a login storm of
 * one account across many processes costs each login one script run. A request with only a
 * `decide` function (or every request, with `decideInRedis: false`) goes by optimistic
 * concurrency: `admit` reads the user's live sessions and their version, runs `decide` in
 * JavaScript, then commits the plan with one Lua script that applies it only if the version is
 * unchanged. On a conflict it reads and decides again after a short random pause, up to
 * `maxAttempts`, then throws {@link AdmissionConflictError}; so `decide` may run more than once
 * per admission, and only the committed decision takes effect. One registry's optimistic
 * admissions of one user go one at a time (they could only make each other retry), so under a
 * login storm of one account the conflicts are between processes, not within one. Both ways
 * keep the same version, so they can be mixed, in one process or across several.
 *
 * Evicted sessions leave a record that {@link RedisSessionRegistry.evictionOf} reads; their id
 * lookup is kept exactly as long as the record. `remove` and `removeAllOf` (a logout, "end all")
 * leave none. `get` resolves a session id to its live session or null: a session is live while
 * its hash exists, which eviction, removal and expiry end in the user's own atomic steps.
 *
 * @example
 * const registry = createRedisSessionRegistry(new Redis(url), { prefix: 'lms:' });
 * const result = await registry.admit({ userId, session, ...loginAdmission(settings, user, context) });
 * const session = await registry.get(cookieSessionId); // SessionDetails | null
 * const why = await registry.evictionOf(oldSessionId); // { at, bySessionId, ... } | null
 */
export function createRedisSessionRegistry(
  redis: Redis,
  options: RedisSessionRegistryOptions = {},
): RedisSessionRegistry {
  const prefix = options.prefix ?? 'sp:';
  if (/[{}]/.test(prefix)) throw new Error(`prefix must not contain "{" or "}": ${prefix}`);
  const sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  const recordTtlMs = options.evictionRecordTtlMs ?? DEFAULT_EVICTION_RECORD_TTL_MS;
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new Error(`maxAttempts must be a positive integer: ${maxAttempts}`);
  }
  const retryDelayMs = options.retryDelayMs ?? jitteredDelayMs;
  const now = options.now ?? Date.now;
  const keys = redisKeys(prefix);
  const decideInRedis = options.decideInRedis ?? true;
  const users = new SessionUserCache(options.userCacheSize ?? DEFAULT_USER_CACHE_SIZE);
  const admissions = new PerUserQueue();
  /**
   * The user's sessions as the last commit left them, kept for the admission queued right
   * behind it, which decides on them without a read; if another process committed meanwhile,
   * the version check refuses the commit and that admission reads afresh.
   */
  const handoffs = new Map<string, Snapshot>();

  async function read(userId: string) {
    const reply = await liveSessions(redis, [keys.index(userId), keys.version(userId)], []);
    return toSnapshot(userId, reply, now());
  }

  /**
   * Runs `step` on the keys of the session's user, which only the `sid:` lookup (another slot,
   * so no script can read it) knows. A user remembered from an earlier admission or lookup
   * saves that read; when the step finds nothing there, the lookup is asked once.
   */
  async function onUserOf<T>(
    sessionId: string,
    step: (userId: string) => Promise<T | null>,
  ): Promise<T | null> {
    const remembered = users.get(sessionId);
    if (remembered !== undefined) {
      const found = await step(remembered);
      if (found !== null) return found;
      users.delete(sessionId);
    }
    const userId = await redis.get(keys.sid(sessionId));
    if (userId === null || userId === remembered) return null;
    const found = await step(userId);
    if (found !== null) users.set(sessionId, userId);
    return found;
  }

  /** The new session's fields as the scripts read them (`session_args` in redis-scripts.ts). */
  function sessionArgs(request: AdmitRequest, track: boolean, pool: string): (string | number)[] {
    const { session } = request;
    const attributes = attributeFields(session.attributes);
    return [
      session.id,
      session.createdAt,
      track ? '1' : '0',
      session.instanceId ?? '',
      session.instanceId === null ? '0' : '1',
      sessionTtlMs,
      recordTtlMs,
      now(),
      pool,
      attributes.length / 2,
      ...attributes,
    ];
  }

  function sessionKeys({ userId, session }: AdmitRequest): string[] {
    return [keys.index(userId), keys.version(userId), keys.session(userId, session.id)];
  }

  function commit(
    request: AdmitRequest,
    version: string,
    plan: AdmissionPlan,
    replyWithSessions: boolean,
  ): Promise<unknown> {
    return commitAdmission(redis, sessionKeys(request), [
      version,
      replyWithSessions ? '1' : '0',
      ...sessionArgs(request, plan.track, plan.pool),
      ...plan.deleteIds,
    ]);
  }

  /** Writes the lookup before the admission's script, on the same connection. */
  function writeLookup(request: AdmitRequest, lookup: Lookup): Promise<unknown> | null {
    if (lookup.written) return null;
    lookup.written = true;
    return redis.set(lookup.key, request.userId, 'PX', sessionTtlMs);
  }

  /** After a commit: this registry's user cache and the evicted sessions' lookups. */
  function committed(request: AdmitRequest, deleteIds: readonly string[]) {
    users.set(request.session.id, request.userId);
    for (const id of deleteIds) users.delete(id);
    // An evicted session's lookup now only serves `evictionOf`: keep it as long as the record.
    // Not awaited (the admission is settled): sent on the same connection, so every later
    // command of this registry sees it; if it is lost, the lookup lives to its session's TTL
    // and still resolves to no live session.
    for (const id of deleteIds) {
      redis.pexpire(keys.sid(id), recordTtlMs).catch(() => undefined);
    }
  }

  async function forget(lookup: Lookup): Promise<void> {
    if (lookup.written && !lookup.keep) await redis.del(lookup.key);
  }

  /** One read-decide-commit; null when another write got in between. */
  async function attempt(request: AdmitRequest, lookup: Lookup): Promise<AdmitResult | null> {
    const { userId } = request;
    const handed = handoffs.get(userId);
    handoffs.delete(userId);
    const snapshot = handed ?? (await read(userId));
    lookup.keep = snapshot.sessions.some((session) => session.id === request.session.id);
    const decision = request.decide(snapshot.sessions.filter((s) => s.tracked).map(toLive));
    const plan = planAdmission(decision);
    if (!plan.admit) return admitResult(decision, plan);
    // Sent on the same connection before the commit, so the lookup exists once the session does.
    const writing = writeLookup(request, lookup);
    const next = admissions.waiting(userId) > 0;
    const [, reply] = await Promise.all([writing, commit(request, snapshot.version, plan, next)]);
    if (reply === 'CONFLICT') return null;
    if (next) handoffs.set(userId, toSnapshot(userId, reply, now()));
    committed(request, plan.deleteIds);
    return admitResult(decision, plan);
  }

  /**
   * Decides and commits in one script ({@link admitWithinLimit}): one round trip besides the
   * lookup's write, which goes first on the same connection. `decide` then runs once, on the
   * sessions the script decided on, and must agree with it.
   */
  async function admitInRedis(request: AdmitRequest, limit: LoginLimit): Promise<AdmitResult> {
    const lookup: Lookup = { key: keys.sid(request.session.id), written: false, keep: false };
    const tracked = limit.outcome === 'limit';
    const args = sessionArgs(request, tracked, tracked ? limit.rule.pool : DEFAULT_POOL);
    if (limit.outcome === 'limit') {
      const { rule } = limit;
      args.push(rule.maxSessions, rule.onLimit, rule.scope, limit.dryRun ? '1' : '0');
      args.push(limit.ignoring.length, ...limit.ignoring);
    }
    try {
      const [, reply] = await Promise.all([
        writeLookup(request, lookup),
        admitWithinLimit(redis, sessionKeys(request), args),
      ]);
      const [outcome, evictIds, before, competing] = reply as [
        'ADMIT' | 'DENY',
        string[],
        unknown,
        number,
      ];
      const { sessions } = toSnapshot(request.userId, before, now());
      lookup.keep = sessions.some((session) => session.id === request.session.id);
      const decision = request.decide(sessions.filter((s) => s.tracked).map(toLive));
      const plan = planAdmission(decision);
      const counted = 'liveSessions' in decision ? decision.liveSessions : 0;
      const agreed =
        (outcome === 'DENY') === !plan.admit &&
        plan.evicted.map((session) => session.id).join('\0') === evictIds.join('\0') &&
        competing === counted;
      if (!agreed) {
        const got = `${outcome} evicting [${evictIds.join(', ')}] (${competing} competing)`;
        const evicting = plan.evicted.map((e) => e.id).join(', ');
        const wanted = `${decision.outcome} evicting [${evicting}] (${counted} competing)`;
        throw new DecisionMismatchError(request.userId, got, wanted);
      }
      if (!plan.admit) await forget(lookup);
      else committed(request, plan.deleteIds);
      return admitResult(decision, plan);
    } catch (error) {
      if (!(error instanceof DecisionMismatchError)) await forget(lookup).catch(() => undefined);
      throw error;
    }
  }

  /** Reads, decides and commits until a commit holds (or `maxAttempts` fail). */
  async function admitNow(request: AdmitRequest): Promise<AdmitResult> {
    const lookup: Lookup = { key: keys.sid(request.session.id), written: false, keep: false };
    try {
      for (let attempts = 1; ; attempts++) {
        const result = await attempt(request, lookup);
        if (result !== null) {
          if (!result.admitted) await forget(lookup);
          return result;
        }
        if (attempts === maxAttempts) throw new AdmissionConflictError(request.userId, attempts);
        await sleep(retryDelayMs(attempts));
      }
    } catch (error) {
      await forget(lookup).catch(() => undefined);
      throw error;
    }
  }

  return {
    // This process's admissions of one user would only conflict with each other: they go one
    // at a time, and the version check settles the races with other processes.
    admit: (request) =>
      request.limit !== undefined && decideInRedis
        ? admitInRedis(request, request.limit)
        : admissions.run(request.userId, () => admitNow(request)),

    async list(userId) {
      return (await read(userId)).sessions;
    },

    async remove(sessionId) {
      users.delete(sessionId);
      const userId = await redis.get(keys.sid(sessionId));
      if (userId === null) return false;
      const removed = await removeSession(
        redis,
        [keys.index(userId), keys.version(userId), keys.session(userId, sessionId)],
        [sessionId, sessionTtlMs],
      );
      // The lookup goes last, so a failure above leaves the session removable.
      if (removed === 1) await redis.del(keys.sid(sessionId));
      return removed === 1;
    },

    get(sessionId) {
      return onUserOf(sessionId, async (userId) => {
        const reply = await getSession(redis, [keys.session(userId, sessionId)], []);
        if (reply === null) return null;
        return toDetails(userId, sessionId, reply as SessionReply, now());
      });
    },

    async touch(sessionId, at) {
      if (!Number.isFinite(at)) throw new Error(`touch needs a time in ms: ${at}`);
      const touched = await onUserOf(sessionId, async (userId) => {
        const live = await touchSession(redis, [keys.session(userId, sessionId)], [at]);
        return live === 1 ? true : null;
      });
      return touched ?? false;
    },

    async removeAllOf(userId, { except } = {}) {
      const ended = (await removeAllSessions(
        redis,
        [keys.index(userId), keys.version(userId)],
        [except === undefined ? '0' : '1', except ?? '', sessionTtlMs],
      )) as string[];
      for (const id of ended) users.delete(id);
      // The lookups go last, as in `remove`; one left behind names a user without the session.
      await Promise.all(ended.map((id) => redis.del(keys.sid(id))));
      return ended;
    },

    async evictionOf(sessionId) {
      const userId = await redis.get(keys.sid(sessionId));
      if (userId === null) return null;
      const record = await redis.hgetall(keys.eviction(userId, sessionId));
      if (record.bySession === undefined) return null;
      return {
        at: Number(record.at),
        byInstanceId: record.byInstance || null,
        bySessionId: record.bySession,
        reason: 'evicted',
      };
    },
  };
}

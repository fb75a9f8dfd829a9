import type { LiveSession } from './decide.ts';
import { PerUserQueue } from './per-user-queue.ts';
import {
  type AdmitRequest,
  type AdmitResult,
  admitResult,
  DEFAULT_SESSION_TTL_MS,
  planAdmission,
  type ResolvingSessionRegistry,
  type SessionDetails,
} from './registry.ts';

export interface MemorySessionRegistryOptions {
  /** How long a session lives after its admission. Default 14 days, as the Redis registry. */
  sessionTtlMs?: number;
  /** Milliseconds since the epoch, for expiry. Default `Date.now`. */
  now?: () => number;
}

function byAge(a: SessionDetails, b: SessionDetails): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function copyOf(session: SessionDetails): SessionDetails {
  return { ...session, attributes: { ...session.attributes } };
}

/**
 * The reference {@link ResolvingSessionRegistry}: sessions in a Map, admissions serialised per
 * user by a promise chain so that the read-decide-write step is atomic even though the API is
 * async. A session expires `sessionTtlMs` after its admission (by `now`), and a touch does not
 * extend it, as in the Redis registry.
 *
 * @example
 * const registry = createMemorySessionRegistry();
 * await registry.admit({ userId: 'u1', session, decide: (live) => decideLogin(s, user, ctx, live) });
 * await registry.get(session.id); // { id, userId, lastSeenAt, expiresAt, attributes, ... }
 */
export function createMemorySessionRegistry(
  options: MemorySessionRegistryOptions = {},
): ResolvingSessionRegistry {
  const sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  const now = options.now ?? Date.now;
  const sessions = new Map<string, SessionDetails>();
  const queue = new PerUserQueue();

  /** The session if it is live; drops it once expired. */
  function live(sessionId: string): SessionDetails | undefined {
    const session = sessions.get(sessionId);
    if (session === undefined || session.expiresAt > now()) return session;
    sessions.delete(sessionId);
    return undefined;
  }

  function liveOf(userId: string): SessionDetails[] {
    return [...sessions.values()]
      .filter((session) => session.userId === userId && live(session.id))
      .sort(byAge);
  }

  function tracked(userId: string): LiveSession[] {
    return liveOf(userId)
      .filter((session) => session.tracked)
      .map(({ id, createdAt, instanceId, pool, lastSeenAt }) => ({
        id,
        createdAt,
        instanceId,
        pool,
        lastSeenAt,
      }));
  }

  return {
    admit(request: AdmitRequest): Promise<AdmitResult> {
      return queue.run(request.userId, () => {
        const decision = request.decide(tracked(request.userId));
        const plan = planAdmission(decision);
        if (plan.admit) {
          for (const id of plan.deleteIds) sessions.delete(id);
          const { id, instanceId, createdAt, attributes } = request.session;
          sessions.set(id, {
            id,
            userId: request.userId,
            createdAt,
            instanceId,
            tracked: plan.track,
            pool: plan.pool,
            lastSeenAt: createdAt,
            expiresAt: now() + sessionTtlMs,
            attributes: { ...attributes },
          });
        }
        return admitResult(decision, plan);
      });
    },
    async list(userId) {
      return liveOf(userId).map(copyOf);
    },
    async remove(sessionId) {
      return live(sessionId) !== undefined && sessions.delete(sessionId);
    },
    async get(sessionId) {
      const session = live(sessionId);
      return session === undefined ? null : copyOf(session);
    },
    async touch(sessionId, at) {
      const session = live(sessionId);
      if (session === undefined) return false;
      session.lastSeenAt = Math.max(session.lastSeenAt, at);
      return true;
    },
    removeAllOf(userId, { except } = {}) {
      return queue.run(userId, () => {
        const ended = liveOf(userId).filter((session) => session.id !== except);
        for (const session of ended) sessions.delete(session.id);
        return ended.map((session) => session.id);
      });
    },
  };
}

import type { LiveSession } from './decide.ts';
import {
  type AdmitRequest,
  type AdmitResult,
  admitResult,
  planAdmission,
  type SessionRecord,
  type SessionRegistry,
} from './registry.ts';

function byAge(a: SessionRecord, b: SessionRecord): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * The reference {@link SessionRegistry}: sessions in a Map, admissions serialised per user by a
 * promise chain so that the read-decide-write step is atomic even though the API is async.
 *
 * @example
 * const registry = createMemorySessionRegistry();
 * await registry.admit({ userId: 'u1', session, decide: (live) => decideLogin(s, user, ctx, live) });
 */
export function createMemorySessionRegistry(): SessionRegistry {
  const sessions = new Map<string, SessionRecord>();
  const queues = new Map<string, Promise<unknown>>();

  function serialised<T>(userId: string, step: () => T): Promise<T> {
    const previous = queues.get(userId) ?? Promise.resolve();
    const next = previous.then(step);
    const settled = next.catch(() => undefined);
    queues.set(userId, settled);
    void settled.then(() => {
      if (queues.get(userId) === settled) queues.delete(userId);
    });
    return next;
  }

  function tracked(userId: string): LiveSession[] {
    return [...sessions.values()]
      .filter((session) => session.userId === userId && session.tracked)
      .sort(byAge)
      .map(({ id, createdAt, instanceId, pool }) => ({ id, createdAt, instanceId, pool }));
  }

  return {
    admit(request: AdmitRequest): Promise<AdmitResult> {
      return serialised(request.userId, () => {
        const decision = request.decide(tracked(request.userId));
        const plan = planAdmission(decision);
        if (plan.admit) {
          for (const id of plan.deleteIds) sessions.delete(id);
          sessions.set(request.session.id, {
            ...request.session,
            userId: request.userId,
            tracked: plan.track,
            pool: plan.pool,
          });
        }
        return admitResult(decision, plan);
      });
    },
    async list(userId) {
      return [...sessions.values()].filter((session) => session.userId === userId).sort(byAge);
    },
    async remove(sessionId) {
      return sessions.delete(sessionId);
    },
  };
}

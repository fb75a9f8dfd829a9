import type { LiveSession } from '../decide.ts';
import {
  admitResult,
  planAdmission,
  type SessionRecord,
  type SessionRegistry,
} from '../registry.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A deliberately broken registry that does what upstream's receiver does: read the slot,
 * then (after an await, as a database round trip would) delete and write. Parallel logins
 * interleave and leave several live sessions. It exists so tests can prove the conformance
 * suite's concurrency check catches this; never use it for anything else.
 */
export function createRacySessionRegistry(): SessionRegistry {
  const sessions = new Map<string, SessionRecord>();
  return {
    async admit(request) {
      await tick();
      const live: LiveSession[] = [...sessions.values()]
        .filter((session) => session.userId === request.userId && session.tracked)
        .map(({ id, createdAt, instanceId, pool }) => ({ id, createdAt, instanceId, pool }));
      const decision = request.decide(live);
      const plan = planAdmission(decision);
      await tick();
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
    },
    async list(userId) {
      return [...sessions.values()].filter((session) => session.userId === userId);
    },
    async remove(sessionId) {
      return sessions.delete(sessionId);
    },
  };
}

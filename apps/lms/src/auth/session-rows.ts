import type { AdmitRequest } from '@storm-lab/session-policy';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { profiles, type sessionEnds } from '../db/schema.ts';
import type { Quota } from './session-store.ts';
import { shortId } from './tokens.ts';

// The rows a login writes besides its session, the same in every session store and enforcement.

/**
 * The tombstones of the sessions a login evicted: when, which login (its instance and short
 * session id) and the quota it enforced (null where none applies, as under upstream enforcement).
 */
export function evictionEnds(
  ids: readonly string[],
  login: Pick<AdmitRequest, 'userId' | 'session'>,
  at: number,
  quota: Quota | null,
): (typeof sessionEnds.$inferInsert)[] {
  return ids.map((sessionId) => ({
    sessionId,
    userId: login.userId,
    reason: 'evicted' as const,
    at,
    byInstance: login.session.instanceId,
    bySession: shortId(login.session.id),
    quotaUsed: quota?.used ?? null,
    quotaMax: quota?.max ?? null,
    quotaScope: quota?.scope ?? null,
    quotaPool: quota?.pool ?? null,
  }));
}

/** As upstream's receiver: the profile's `meta.session_id` names the newest tracked session. */
export function recordSlot(tx: Db, userId: string, sessionId: string): void {
  tx.insert(profiles)
    .values({ userId, meta: JSON.stringify({ session_id: sessionId }) })
    .onConflictDoUpdate({
      target: profiles.userId,
      set: { meta: sql`json_set(${profiles.meta}, '$.session_id', ${sessionId})` },
    })
    .run();
}

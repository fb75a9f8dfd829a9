import type { AdmitRequest, LoginDecision } from '@storm-lab/session-policy';
import { eq, sql } from 'drizzle-orm';
import { shortId } from '../auth/tokens.ts';
import type { Db } from '../db/client.ts';
import { profiles, sessionEnds, users } from '../db/schema.ts';
import type { Quota } from './store.ts';

// The rows a login writes besides its session, in SQLite, the same in every session store and
// enforcement.

/**
 * The quota an allowed login enforced, as its evictions' tombstones tell it: the sessions of its
 * pool after it (the policy counted those that competed; `ended` of them ended, the login's own
 * joined) and the pool's limit. Null for any other decision.
 *
 * @example
 * quotaOf(result.decision, result.evicted.length); // { used: 1, max: 1, scope: 'account', pool: 'default' }
 */
export function quotaOf(decision: LoginDecision, ended: number): Quota | null {
  if (decision.outcome !== 'allow') return null;
  const { scope, maxSessions, pool } = decision.rule;
  return { used: decision.liveSessions - ended + 1, max: maxSessions, scope, pool };
}

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

/** What a login writes besides its session; see {@link loginRows}. */
export interface LoginRows {
  /** Tombstones of evicted sessions ({@link evictionEnds}); one already there is kept. */
  ends(rows: readonly (typeof sessionEnds.$inferInsert)[]): void;
  /** As upstream's receiver: the profile's `meta.session_id` names the newest tracked session. */
  slot(userId: string, sessionId: string): void;
  /** Django's update_last_login. */
  lastLogin(userId: string, at: number): void;
}

const placeholder = (name: string) => sql.placeholder(name);

/**
 * The writes of {@link LoginRows} as statements prepared once on `db`'s connection: a login
 * runs them (inside whatever transaction it is in) without building or compiling SQL again,
 * which cost about a third of a millisecond per login, paid by every login of a storm.
 *
 * @example
 * const rows = loginRows(db);
 * db.transaction(() => { rows.slot(userId, sessionId); rows.lastLogin(userId, now); });
 */
export function loginRows(db: Db): LoginRows {
  const end = db
    .insert(sessionEnds)
    .values({
      sessionId: placeholder('sessionId'),
      userId: placeholder('userId'),
      reason: placeholder('reason'),
      at: placeholder('at'),
      endedBy: placeholder('endedBy'),
      byInstance: placeholder('byInstance'),
      bySession: placeholder('bySession'),
      quotaUsed: placeholder('quotaUsed'),
      quotaMax: placeholder('quotaMax'),
      quotaScope: placeholder('quotaScope'),
      quotaPool: placeholder('quotaPool'),
    })
    .onConflictDoNothing()
    .prepare();
  const slot = db
    .insert(profiles)
    .values({ userId: placeholder('userId'), meta: placeholder('meta') })
    .onConflictDoUpdate({
      target: profiles.userId,
      set: { meta: sql`json_set(${profiles.meta}, '$.session_id', ${placeholder('sessionId')})` },
    })
    .prepare();
  const lastLogin = db
    .update(users)
    .set({ lastLogin: sql`${placeholder('at')}` })
    .where(eq(users.id, placeholder('userId')))
    .prepare();
  return {
    ends(rows) {
      for (const row of rows) {
        end.run({
          endedBy: null,
          byInstance: null,
          bySession: null,
          quotaUsed: null,
          quotaMax: null,
          quotaScope: null,
          quotaPool: null,
          ...row,
        });
      }
    },
    slot(userId, sessionId) {
      slot.run({ userId, sessionId, meta: JSON.stringify({ session_id: sessionId }) });
    },
    lastLogin(userId, at) {
      lastLogin.run({ userId, at });
    },
  };
}

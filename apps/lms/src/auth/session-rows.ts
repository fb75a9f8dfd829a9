import type { AdmitRequest, LiveSession } from '@storm-lab/session-policy';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { profiles, sessionEnds, sessions, users } from '../db/schema.ts';
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

/** The SQLite store's own statements of an admission; see {@link admissionRows}. */
export interface AdmissionRows {
  /** The user's tracked sessions live at `at`, oldest first: what the policy decides on. */
  liveTracked(userId: string, at: number): LiveSession[];
  /** Records the admitted session. */
  insert(row: typeof sessions.$inferSelect): void;
  /** Deletes one session (an evicted one, or the one the login replaces). */
  remove(sessionId: string): void;
}

/**
 * The SQLite store's admission statements, prepared once on `db`'s connection as
 * {@link loginRows} are: every login of a storm runs them, inside its IMMEDIATE transaction.
 *
 * @example
 * const rows = admissionRows(db);
 * db.transaction(() => rows.liveTracked(userId, Date.now()), { behavior: 'immediate' });
 */
export function admissionRows(db: Db): AdmissionRows {
  const liveTracked = db
    .select({
      id: sessions.id,
      createdAt: sessions.createdAt,
      instanceId: sessions.instanceId,
      lastSeenAt: sessions.lastSeenAt,
      pool: sessions.pool,
    })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, placeholder('userId')),
        eq(sessions.tracked, true),
        gt(sessions.expiresAt, placeholder('at')),
      ),
    )
    .orderBy(asc(sessions.createdAt), asc(sessions.id))
    .prepare();
  const insert = db
    .insert(sessions)
    .values({
      id: placeholder('id'),
      userId: placeholder('userId'),
      createdAt: placeholder('createdAt'),
      expiresAt: placeholder('expiresAt'),
      lastSeenAt: placeholder('lastSeenAt'),
      instanceId: placeholder('instanceId'),
      tracked: placeholder('tracked'),
      userAgent: placeholder('userAgent'),
      address: placeholder('address'),
      pool: placeholder('pool'),
      authHash: placeholder('authHash'),
    })
    .prepare();
  const remove = db
    .delete(sessions)
    .where(eq(sessions.id, placeholder('id')))
    .prepare();
  return {
    liveTracked: (userId, at) => liveTracked.all({ userId, at }),
    insert(row) {
      insert.run(row);
    },
    remove(id) {
      remove.run({ id });
    },
  };
}

import {
  type OpenedSessionStore,
  openServerSessionStore,
  SessionStoreUnreachableError,
  serverSessionStore,
} from '../auth/open-session-store.ts';
import type { ClientDb } from '../db/client.ts';
import type { LmsConfig } from '../env.ts';

/** How the sessions of users whose password changed were ended in the LMS's Redis. */
export type RedisEnding = { ended: number } | { unreachable: SessionStoreUnreachableError };

/**
 * After a password change: ends the users' sessions in the Redis the LMS uses, if it uses one
 * (SQLite sessions ended with the password, in its transaction). When that Redis cannot be
 * reached the password stays changed and its sessions are refused all the same: each one's
 * next request finds that its session auth hash no longer matches and ends it.
 */
export async function endRedisSessions(
  config: LmsConfig,
  db: ClientDb,
  userIds: readonly string[],
): Promise<RedisEnding> {
  if (userIds.length === 0 || serverSessionStore(db, config.sessionStore).kind !== 'redis') {
    return { ended: 0 };
  }
  let opened: OpenedSessionStore | null = null;
  try {
    opened = await openServerSessionStore(config, db);
    let ended = 0;
    for (const id of userIds) ended += await opened.store.endAll(id, 'password-change');
    return { ended };
  } catch (error) {
    if (error instanceof SessionStoreUnreachableError) return { unreachable: error };
    // Lost after the PING: the same as never reached, for the sessions still there.
    const where = opened?.where;
    if (where?.kind !== 'redis') throw error;
    return { unreachable: new SessionStoreUnreachableError(where.url, where.prefix, error) };
  } finally {
    opened?.close();
  }
}

/** What a password change did to the sessions, for the line that reports it. */
export function endedText(sqliteEnded: number, redis: RedisEnding): string {
  if ('unreachable' in redis) {
    const { url, reason } = redis.unreachable;
    return `; its sessions end on their next request (password-change): the session Redis at ${url} cannot be reached (${reason})`;
  }
  const ended = sqliteEnded + redis.ended;
  return ended ? `; ${ended} session${ended === 1 ? '' : 's'} ended (password-change)` : '';
}

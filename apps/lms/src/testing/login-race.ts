import type Database from 'better-sqlite3';
import { expect } from 'vitest';
import { sessionIdOf } from '../auth/tokens.ts';
import type { Fetcher } from './client.ts';

/** Logins per round of the race tests. */
export const PARALLEL = 32;
/** The account every racing login uses: the seeded service account (group `xqueue`). */
export const ACCOUNT = { username: 'xqueue_svc', password: 'xqueue-pass' };

/** One xqueue-watcher style login; returns the status and the session cookie's token. */
export async function login(fetcher: Fetcher, instance?: string) {
  const response = await fetcher('/xqueue/login/', {
    method: 'POST',
    body: new URLSearchParams(ACCOUNT),
    headers: instance ? { 'X-Client-Instance': instance } : {},
  });
  const cookie = response.headers.getSetCookie().find((line) => line.startsWith('sessionid='));
  return { status: response.status, token: cookie?.split(';')[0]?.slice('sessionid='.length) };
}

/** Fires `count` logins at once, spread over the fetchers in turn; all must succeed. */
export async function storm(
  fetchers: Fetcher[],
  count = PARALLEL,
  instance?: (index: number) => string,
) {
  const results = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      login(fetchers[index % fetchers.length]!, instance?.(index)),
    ),
  );
  expect(results.map((result) => result.status)).toEqual(Array(count).fill(200));
  return results.map((result) => result.token!);
}

/** What the database says about the account: live tracked sessions and the profile slot. */
export function accountState(sqlite: Database.Database, now: number) {
  const user = sqlite.prepare('SELECT id FROM users WHERE username = ?').get(ACCOUNT.username) as {
    id: string;
  };
  const live = sqlite
    .prepare(
      `SELECT id, instance_id AS instance FROM sessions
       WHERE user_id = ? AND tracked = 1 AND expires_at > ? ORDER BY created_at, id`,
    )
    .all(user.id, now) as { id: string; instance: string | null }[];
  const all = sqlite.prepare('SELECT count(*) AS n FROM sessions WHERE user_id = ?').get(user.id);
  const meta = sqlite.prepare('SELECT meta FROM profiles WHERE user_id = ?').get(user.id) as
    | { meta: string }
    | undefined;
  const slot = meta ? (JSON.parse(meta.meta) as { session_id?: string }).session_id : undefined;
  return { live, rows: (all as { n: number }).n, slot };
}

/** Asserts one round's outcome: exactly `expected` live sessions, all from this round's logins. */
export function expectLive(
  sqlite: Database.Database,
  now: number,
  tokens: string[],
  expected: number,
) {
  const state = accountState(sqlite, now);
  const ids = new Set(tokens.map(sessionIdOf));
  expect(state.live).toHaveLength(expected);
  expect(state.rows).toBe(expected);
  for (const session of state.live) expect(ids.has(session.id)).toBe(true);
  expect(state.live.map((session) => session.id)).toContain(state.slot);
  return state;
}

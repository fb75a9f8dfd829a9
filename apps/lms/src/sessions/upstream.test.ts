import { type LocalLms, startLms } from '@storm-lab/harness';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { urlFetcher } from '../testing/client.ts';
import { TEST_ITERATIONS } from '../testing/fixtures.ts';
import { ACCOUNT, accountState, login, storm } from '../testing/login-race.ts';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

/** An LMS (or two on one file) enforcing single login the way `enforcement` says. */
async function lmsWith(enforcement: 'atomic' | 'upstream', processes = 1, extra = {}) {
  const env = {
    PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS),
    LOG_LEVEL: 'warn',
    PREVENT_CONCURRENT_LOGINS: 'true',
    SINGLE_LOGIN_ENFORCEMENT: enforcement,
    ...extra,
  };
  const first: LocalLms = await startLms({ env });
  cleanups.push(() => first.stop());
  const servers = [first];
  for (let index = 1; index < processes; index++) {
    const next = await startLms({ env, databasePath: first.databasePath });
    cleanups.push(() => next.stop());
    servers.push(next);
  }
  const reader = new Database(first.databasePath, { readonly: true });
  cleanups.push(() => {
    reader.close();
  });
  // Every session of the account, tracked or not: upstream's survivors are untracked rows.
  const sessionsOf = () =>
    (
      reader
        .prepare(
          'SELECT count(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = ?',
        )
        .get(ACCOUNT.username) as { n: number }
    ).n;
  return { fetchers: servers.map((server) => urlFetcher(server.url)), reader, sessionsOf };
}

describe('SINGLE_LOGIN_ENFORCEMENT=upstream', { timeout: 120_000 }, () => {
  // edx-platform UserProfile.set_login_session: the next login deletes the session in the slot.
  it('evicts the previous session one login at a time, and keeps the slot on the newest', async () => {
    const { fetchers, reader, sessionsOf } = await lmsWith('upstream');
    const [fetcher] = fetchers as [ReturnType<typeof urlFetcher>];
    const first = await login(fetcher);
    const second = await login(fetcher);
    expect([first.status, second.status]).toEqual([200, 200]);
    const state = accountState(reader, Date.now());
    expect(state.live).toHaveLength(1);
    expect(state.slot).toBe(state.live[0]?.id);
    expect(sessionsOf()).toBe(1);
  });

  // edx-platform enforce_single_login with SINGLE_LOGIN_EXEMPT_GROUPS: an exempt login touches nothing.
  it('leaves every session of an exempt account alone', async () => {
    const { fetchers, sessionsOf } = await lmsWith('upstream', 1, {
      SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue',
    });
    const [fetcher] = fetchers as [ReturnType<typeof urlFetcher>];
    for (let index = 0; index < 3; index++) expect((await login(fetcher)).status).toBe(200);
    expect(sessionsOf()).toBe(3);
  });

  // edx-platform UserProfile.set_login_session has no lock: overlapping logins read one slot.
  it('lets overlapping logins all survive, across two processes, where atomic keeps one', async () => {
    const rounds = 5;
    const count = 8;
    const survivors: Record<string, number[]> = {};
    for (const enforcement of ['atomic', 'upstream'] as const) {
      const { fetchers, sessionsOf } = await lmsWith(enforcement, 2);
      survivors[enforcement] = [];
      for (let round = 0; round < rounds; round++) {
        await storm(fetchers, count);
        survivors[enforcement].push(sessionsOf());
      }
    }
    expect(survivors.atomic).toEqual(Array(rounds).fill(1));
    // Sessions left over by one round are never evicted again (nothing tracks them), so the
    // count only grows; one round of overlapping logins is enough to show the race.
    expect(Math.max(...(survivors.upstream as number[]))).toBeGreaterThan(1);
  });
});

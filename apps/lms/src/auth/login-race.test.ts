import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicySettingsInput } from '@storm-lab/session-policy';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.ts';
import { openDatabase } from '../db/client.ts';
import { createSqliteSessionStore } from '../sessions/sqlite-store.ts';
import type { SessionStore } from '../sessions/store.ts';
import { appFetcher, type Fetcher } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';
import { accountState, expectLive, PARALLEL, storm } from '../testing/login-race.ts';
import { sessionIdOf } from './tokens.ts';

const ROUNDS = 200;
const QUEUELEN = '/xqueue/get_queuelen/?queue_name=test-queue';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

/** A test LMS on a database file, with `apps` createApp instances each on its own connection. */
async function fileLms(apps: 1 | 2, policy: PolicySettingsInput = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lms-race-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'lms.db');
  // The throttle off, as cluster.test.ts has it for its races: every login of a round in
  // flight at once (the throttle holds an address's checks in flight to its failure budget).
  const lms = await createTestLms({ path, policy, config: { loginThrottleFailures: 0 } });
  cleanups.push(() => lms.close());
  const fetchers: Fetcher[] = [lms.fetcher];
  if (apps === 2) {
    const second = openDatabase({ path });
    cleanups.push(() => second.close());
    const app = createApp({
      db: second.db,
      config: lms.config,
      logger: pino({ level: 'silent' }),
      now: lms.clock.now,
    });
    fetchers.push(appFetcher(app));
  }
  return { lms, fetchers };
}

async function statusWith(fetcher: Fetcher, token: string): Promise<number> {
  return (await fetcher(QUEUELEN, { headers: { cookie: `sessionid=${token}` } })).status;
}

describe('parallel logins through HTTP on the SQLite store', { timeout: 90_000 }, () => {
  it.each([1, 2] as const)(
    `leaves exactly one live session after ${PARALLEL} parallel logins, ${ROUNDS} rounds, %i app(s) on one file`,
    async (apps) => {
      const { lms, fetchers } = await fileLms(apps);
      for (let round = 0; round < ROUNDS; round++) {
        const tokens = await storm(fetchers);
        const { live } = expectLive(lms.database.sqlite, lms.clock.now(), tokens, 1);
        const survivor = tokens.find((token) => sessionIdOf(token) === live[0]!.id)!;
        const evicted = tokens.find((token) => token !== survivor)!;
        // What the workers see: only the survivor is served, through either app.
        expect(await statusWith(fetchers[round % apps]!, survivor)).toBe(200);
        expect(await statusWith(fetchers[(round + 1) % apps]!, evicted)).toBe(403);
        lms.clock.advance(1);
      }
    },
  );

  it(`leaves exactly maxSessions live sessions after ${PARALLEL} parallel logins, 50 rounds`, async () => {
    const { lms, fetchers } = await fileLms(2, { maxSessions: 4 });
    for (let round = 0; round < 50; round++) {
      const tokens = await storm(fetchers);
      expectLive(lms.database.sqlite, lms.clock.now(), tokens, 4);
      lms.clock.advance(1);
    }
  });

  it('never evicts another instance under instance scope, 50 rounds', async () => {
    const { lms, fetchers } = await fileLms(2, { scope: 'instance' });
    const bystanders = ['bystander-0', 'bystander-1', 'bystander-2'];
    const kept = [];
    for (const name of bystanders) kept.push(...(await storm(fetchers, 1, () => name)));
    const keptIds = kept.map(sessionIdOf).sort();
    for (let round = 0; round < 50; round++) {
      lms.clock.advance(1);
      const tokens = await storm(fetchers, PARALLEL, (index) => `worker-${index % 4}`);
      const state = accountState(lms.database.sqlite, lms.clock.now());
      // One live session per instance: the instance names are distinct and cover all eight.
      const instances = state.live.map((session) => session.instance);
      expect(instances.sort()).toEqual([...bystanders, ...workerNames(4)]);
      const idOf = new Map(state.live.map((session) => [session.instance, session.id]));
      const roundIds = new Set(tokens.map(sessionIdOf));
      for (const name of workerNames(4)) expect(roundIds.has(idOf.get(name)!)).toBe(true);
      const bystanderIds = bystanders.map((name) => idOf.get(name)!).sort();
      expect(bystanderIds).toEqual(keptIds);
    }
    for (const token of kept) expect(await statusWith(fetchers[0]!, token)).toBe(200);
  });

  it('catches the upstream read-modify-write race (the check can fail)', async () => {
    const { lms } = await fileLms(1);
    const app = createApp({
      db: lms.database.db,
      config: lms.config,
      logger: pino({ level: 'silent' }),
      now: lms.clock.now,
      store: readModifyWrite(lms),
    });
    const counts: number[] = [];
    for (let round = 0; round < 5; round++) {
      await storm([appFetcher(app)]);
      counts.push(accountState(lms.database.sqlite, lms.clock.now()).live.length);
      lms.clock.advance(1);
    }
    expect(Math.max(...counts)).toBeGreaterThan(1);
  });
});

function workerNames(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `worker-${index}`);
}

/**
 * Upstream's receiver on the real store: read the live sessions, then (after an await, as a
 * database round trip would) decide on what it read and write. Parallel logins decide on stale
 * reads and several survive.
 */
function readModifyWrite(lms: TestLms): SessionStore {
  const store = createSqliteSessionStore({
    db: lms.database.db,
    ttlMs: lms.config.sessionTtlSeconds * 1000,
    now: lms.clock.now,
  });
  return {
    ...store,
    async admit(request) {
      const live = (await store.list(request.userId)).filter((session) => session.tracked);
      await new Promise((resolve) => setImmediate(resolve));
      const stale = live.map(({ id, createdAt, instanceId }) => ({ id, createdAt, instanceId }));
      return store.admit({ ...request, decide: () => request.decide(stale) });
    },
  };
}

import { randomBytes } from 'node:crypto';
import {
  LmsStartError,
  type LocalLms,
  type RedisHandle,
  startLms,
  useRedis,
  waitFor,
} from '@storm-lab/harness';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sessionIdOf } from './auth/tokens.ts';
import { openDatabase } from './db/client.ts';
import { createRedisSessionStore } from './sessions/redis-store.ts';
import { newConnectionFetcher, TestClient, urlFetcher } from './testing/client.ts';
import { TEST_ITERATIONS } from './testing/fixtures.ts';
import { ACCOUNT, PARALLEL, storm } from './testing/login-race.ts';
import { findCredentials } from './users.ts';

// LMS_WORKERS=N: N processes behind one port (node:cluster), sessions shared through Redis, as
// gunicorn workers share Django's cache session backend.

const WORKERS = 4;
/**
 * For the rounds of parallel logins: no login throttle (two SQLite writes per login that every
 * worker waits its turn for) and no fsync per commit; the admission they race on is Redis's.
 */
const RACE_ONLY = { LOGIN_THROTTLE_FAILURES: '0', SQLITE_SYNCHRONOUS: 'normal' };
let redis: RedisHandle | undefined;
let cleanups: (() => Promise<void> | void)[] = [];
beforeAll(async () => {
  redis = await useRedis(process.env.REDIS_URL);
});
afterAll(() => redis?.stop());
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

/** An LMS of WORKERS workers on a Redis prefix of its own; a view of its sessions for the test. */
async function clusterLms(extra: Record<string, string> = {}) {
  const prefix = `lms-cluster-${randomBytes(6).toString('hex')}:`;
  const lms: LocalLms = await startLms({
    env: {
      PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS),
      LOG_LEVEL: 'info',
      LMS_WORKERS: String(WORKERS),
      SESSION_STORE: 'redis',
      SESSION_REDIS_URL: redis!.url,
      SESSION_REDIS_PREFIX: prefix,
      ...extra,
    },
  });
  cleanups.push(() => lms.stop());
  const database = openDatabase({ path: lms.databasePath });
  const client = new Redis(redis!.url);
  cleanups.push(() => {
    client.disconnect();
    database.close();
  });
  const sessions = createRedisSessionStore({
    db: database.db,
    redis: client,
    prefix,
    ttlMs: 3_600_000,
    now: Date.now,
  });
  const userId = findCredentials(database.db, ACCOUNT.username)!.id;
  /** The service account's live tracked session ids, from Redis. */
  const liveTracked = async () =>
    (await sessions.list(userId)).filter((session) => session.tracked).map((session) => session.id);
  /** The service account's live sessions, tracked or not, from Redis. */
  const live = () => sessions.list(userId);
  return { lms, liveTracked, sessions: live };
}

/** The pids of the workers that logged `listening` (once each has). */
async function workerPids(lms: LocalLms): Promise<Set<number>> {
  const pids = new Set<number>();
  const deadline = Date.now() + 30_000;
  while (pids.size < WORKERS && Date.now() < deadline) {
    for (const line of lms.process.output().split('\n')) {
      if (!line.includes('"listening"')) continue;
      pids.add((JSON.parse(line) as { pid: number }).pid);
    }
    if (pids.size < WORKERS) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return pids;
}

describe(`LMS_WORKERS=${WORKERS} with SESSION_STORE=redis`, { timeout: 180_000 }, () => {
  it('serves from every worker on one port, and /metrics on any worker counts the logins of all', async () => {
    const { lms } = await clusterLms({ SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue' });
    const pids = await workerPids(lms);
    expect(pids.size).toBe(WORKERS);
    expect(pids.has(lms.process.pid!)).toBe(false);
    const fetcher = newConnectionFetcher(lms.url);
    await storm([fetcher], 20);
    // Each scrape on a new connection, so on the next worker: each one answers for all of them.
    for (let scrape = 0; scrape < 2 * WORKERS; scrape++) {
      const text = await (await fetcher('/metrics', {})).text();
      expect(text).toContain('lms_logins_total{account="xqueue_svc",path="xqueue"} 20');
      expect(text).toMatch(/^lms_queue_length\{queue="test-queue"\} 0$/m);
      expect(text).toMatch(new RegExp(`^lms_workers_serving ${WORKERS}$`, 'm'));
    }
  });

  // as edx-platform's single session, made atomic: no interleaving of workers lets two survive
  it(`leaves exactly one live session after ${PARALLEL} parallel logins, 200 rounds`, async () => {
    const { lms, liveTracked } = await clusterLms(RACE_ONLY);
    const fetcher = urlFetcher(lms.url);
    for (let round = 0; round < 200; round++) {
      const tokens = new Set((await storm([fetcher])).map(sessionIdOf));
      const live = await liveTracked();
      expect(live, `round ${round}`).toHaveLength(1);
      expect(tokens.has(live[0]!), `round ${round}`).toBe(true);
    }
  });

  it(`leaves exactly N live sessions under SINGLE_LOGIN_MAX_SESSIONS=N, 50 rounds`, async () => {
    const { lms, liveTracked } = await clusterLms({ ...RACE_ONLY, SINGLE_LOGIN_MAX_SESSIONS: '3' });
    const fetcher = urlFetcher(lms.url);
    for (let round = 0; round < 50; round++) {
      const tokens = new Set((await storm([fetcher])).map(sessionIdOf));
      const live = await liveTracked();
      expect(live, `round ${round}`).toHaveLength(3);
      for (const id of live) expect(tokens.has(id), `round ${round}`).toBe(true);
    }
  });

  it('applies a policy change made on one worker at every worker, and throttles guesses spread over them', async () => {
    const { lms, sessions } = await clusterLms();
    const staff = new TestClient(urlFetcher(lms.url));
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
    const saved = await staff.request('/api/admin/policy', {
      method: 'PUT',
      body: JSON.stringify({ settings: { exemptUsernames: ['xqueue_svc'] }, reason: 'storm' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(saved.status).toBe(200);
    // Every worker's next login reads the saved policy: 4 x PARALLEL logins, all kept.
    const fetcher = newConnectionFetcher(lms.url);
    const tokens = await storm([fetcher], WORKERS * PARALLEL);
    expect(await sessions()).toHaveLength(tokens.length);
    // Ten wrong passwords, each on whichever worker takes it: the eleventh attempt is refused.
    for (let guess = 0; guess < 10; guess++) {
      const wrong = await new TestClient(fetcher).webLogin('student1', `guess-${guess}`);
      expect(wrong.status, `guess ${guess}`).toBe(401);
    }
    const refused = await new TestClient(fetcher).webLogin('student1', 'student-pass');
    expect(refused.status).toBe(429);
  });

  it('alerts on a storm whose evictions are spread over the workers, and shows one rate for the account', async () => {
    // 12 logins, one eviction each after the first: about 3 per worker, 11 for the LMS.
    const { lms } = await clusterLms({ STORM_ALERT_EVICTIONS_PER_MINUTE: '8' });
    const fetcher = newConnectionFetcher(lms.url);
    for (let index = 0; index < 12; index++) await storm([fetcher], 1);
    const alerts = lms.process
      .output()
      .split('\n')
      .filter((line) => line.includes('"storm-alert"'));
    expect(alerts).toHaveLength(1);
    expect(JSON.parse(alerts[0]!)).toMatchObject({ account: 'xqueue_svc' });
    const text = await (await fetcher('/metrics', {})).text();
    expect(text).toContain('lms_storm_alerts_total{account="xqueue_svc"} 1');
    const staff = new TestClient(fetcher);
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
    const stats = (await (await staff.get('/api/admin/stats')).json()) as {
      accounts: { account: string; loginsPerMinute: number; evictionsPerMinute: number }[];
    };
    expect(stats.accounts.find((row) => row.account === 'xqueue_svc')).toMatchObject({
      loginsPerMinute: 12,
      evictionsPerMinute: 11,
      storming: true,
    });
    // The per-second chart adds up every worker's seconds: 13 logins (the staff's too), 11
    // evictions, once the second of the last login is over (each worker alone has about 3).
    const totals = await waitFor(
      async () => {
        const { series } = (await (await staff.get('/api/admin/stats')).json()) as {
          series: { logins: number[]; evictions: number[] };
        };
        const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
        const seen = { logins: sum(series.logins), evictions: sum(series.evictions) };
        return seen.logins >= 13 ? seen : undefined;
      },
      { timeoutMs: 10_000, what: "the dashboard's series to count every login" },
    );
    expect(totals).toEqual({ logins: 13, evictions: 11 });
  });

  // edx-platform UserProfile.set_login_session, unlocked: read the slot, delete it, write it
  it('lets parallel logins on several workers all survive under SINGLE_LOGIN_ENFORCEMENT=upstream', async () => {
    const { lms, sessions } = await clusterLms({ SINGLE_LOGIN_ENFORCEMENT: 'upstream' });
    const fetcher = urlFetcher(lms.url);
    // One at a time, each login deletes the session in the slot: one survives.
    const [first] = await storm([fetcher], 1);
    const [second] = await storm([fetcher], 1);
    const liveIds = async () => new Set((await sessions()).map((session) => session.id));
    expect(await liveIds()).toEqual(new Set([sessionIdOf(second!)]));
    expect(first).not.toBe(second);
    // At once, logins read the same slot: more than one of a round survives (16 to 20 of the
    // first round's 32 in four runs here).
    const survivors: number[] = [];
    for (let round = 0; round < 50 && !survivors.some((count) => count > 1); round++) {
      const tokens = (await storm([fetcher])).map(sessionIdOf);
      const live = await liveIds();
      survivors.push(tokens.filter((id) => live.has(id)).length);
    }
    expect(Math.max(...survivors)).toBeGreaterThan(1);
  });

  it('replaces a worker that dies, and stops every worker on SIGTERM', async () => {
    const { lms } = await clusterLms();
    const [victim] = await workerPids(lms);
    process.kill(victim!, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    let replaced = false;
    while (!replaced && Date.now() < deadline) {
      replaced = lms.process.output().includes('worker died; starting another');
      if (!replaced) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(replaced).toBe(true);
    expect((await urlFetcher(lms.url)('/healthz', {})).status).toBe(200);
    const pids = await workerPids(lms);
    await lms.stop();
    for (const pid of pids) {
      expect(() => process.kill(pid, 0), `worker ${pid} still running`).toThrow();
    }
  });

  it('refuses more than one worker without SESSION_STORE=redis, and says what to set', async () => {
    const failing = startLms({
      env: { PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS), LMS_WORKERS: '2' },
    });
    await expect(failing).rejects.toThrow(LmsStartError);
    await expect(failing).rejects.toThrow(/LMS_WORKERS=2 .* set SESSION_STORE=redis/);
  });
});

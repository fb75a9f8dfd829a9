import { type RedisHandle, useRedis } from '@storm-lab/harness';
import type { PolicySettingsInput } from '@storm-lab/session-policy';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import {
  createTestLms,
  type TestLms,
  type TestLmsOptions,
  TRANSPORTS,
} from '../testing/fixtures.ts';
import { findCredentials, profileMeta } from '../users.ts';

const QUEUELEN = '/xqueue/get_queuelen/?queue_name=test-queue';
let lms: TestLms | undefined;
afterEach(() => lms?.close());
let redis: RedisHandle | undefined;
beforeAll(async () => {
  redis = await useRedis(process.env.REDIS_URL);
});
afterAll(() => redis?.stop());

/** Live sessions of every user, from the store the app keeps them in. */
async function liveSessions(lms: TestLms): Promise<number> {
  return [...(await lms.sessions.liveCounts()).values()].reduce((sum, live) => sum + live, 0);
}

/** Both transports with SQLite sessions, and SESSION_STORE=redis over a real socket. */
const SETUPS = [
  ...TRANSPORTS.map((transport) => ({ transport, store: 'sqlite' })),
  { transport: 'socket', store: 'redis' },
] as const;

function count(lms: TestLms, table: 'session_ends'): number {
  return (lms.database.sqlite.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number })
    .n;
}

function slotOf(lms: TestLms, username: string): unknown {
  const user = findCredentials(lms.database.db, username);
  return user ? profileMeta(lms.database.db, user.id).session_id : undefined;
}

async function metrics(client: TestClient): Promise<string> {
  return (await client.get('/metrics')).text();
}

describe.each(SETUPS)('single-login hook over $transport, sessions in $store', (setup) => {
  const create = (options: TestLmsOptions = {}) =>
    createTestLms({
      ...options,
      transport: setup.transport,
      redisUrl: setup.store === 'redis' ? redis?.url : undefined,
    });

  async function twoGraders(options: TestLmsOptions = {}) {
    lms = await create(options);
    const first = new TestClient(lms.fetcher);
    const second = new TestClient(lms.fetcher);
    expect((await first.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await second.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    return { lms, first, second };
  }

  it('evicts the first xqueue client when a second logs in as the same account', async () => {
    const { first, second } = await twoGraders();
    const response = await first.get('/xqueue/get_submission/?queue_name=test-queue');
    expect(response.status).toBe(403);
    expect(response.headers.get('X-Session-End-Reason')).toBe('evicted');
    const body = (await response.json()) as { session_end: { at: string } };
    expect(body).toMatchObject({
      detail: 'Authentication credentials were not provided.',
      session_end: { reason: 'evicted' },
    });
    expect(new Date(body.session_end.at).toISOString()).toBe(body.session_end.at);
    expect((await second.get(QUEUELEN)).status).toBe(200);
  });

  it('tells the evicted client which login evicted it and the quota it enforced', async () => {
    const { lms, first } = await twoGraders();
    const body = (await (await first.get(QUEUELEN)).json()) as {
      session_end: Record<string, unknown>;
    };
    const [eviction] = lms.logs.filter((line) => line.event === 'eviction');
    expect(body.session_end).toMatchObject({
      reason: 'evicted',
      by_instance: null,
      // the evicting session, by the short id the LMS's log names it with
      by_session: eviction?.session,
      quota: { used: 1, max: 1, scope: 'account', pool: 'default' },
    });
  });

  it('counts the quota per instance under instance scope, and the limit of the rule', async () => {
    lms = await create({ policy: { scope: 'instance', maxSessions: 2 } });
    const workers = [0, 1, 2].map(() => new TestClient(lms!.fetcher));
    for (const worker of workers) {
      await worker.xqueueLogin('xqueue_svc', 'xqueue-pass', { 'X-Client-Instance': 'worker-a' });
    }
    // One of the first two is evicted (they may share a creation time on the test clock).
    const responses = await Promise.all(workers.map((worker) => worker.get(QUEUELEN)));
    expect(responses.map((response) => response.status).sort()).toEqual([200, 200, 403]);
    const response = responses.find((candidate) => candidate.status === 403)!;
    expect(await response.json()).toMatchObject({
      session_end: {
        by_instance: 'worker-a',
        quota: { used: 2, max: 2, scope: 'instance', pool: 'default' },
      },
    });
  });

  it("keeps one account's browser and API sessions alive under a path rule: two pools", async () => {
    lms = await create({ policy: { rules: [{ match: { path: 'xqueue' } }] } });
    const browser = new TestClient(lms.fetcher);
    const api = new TestClient(lms.fetcher);
    expect((await api.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await browser.webLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await api.get(QUEUELEN)).status).toBe(200);
    expect((await browser.get('/me')).status).toBe(200);
    // Within the xqueue pool the account is still single-session, and its quota says so.
    const secondApi = new TestClient(lms.fetcher);
    expect((await secondApi.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    const evicted = await api.get(QUEUELEN);
    expect(evicted.status).toBe(403);
    expect(await evicted.json()).toMatchObject({
      session_end: { quota: { used: 1, max: 1, scope: 'account', pool: 'path:xqueue' } },
    });
    expect((await browser.get('/me')).status).toBe(200);
    expect((await secondApi.get(QUEUELEN)).status).toBe(200);
    const { sessions } = (await (await browser.get('/api/sessions')).json()) as {
      sessions: Array<{ pool: string }>;
    };
    expect(sessions.map((session) => session.pool).sort()).toEqual(['default', 'path:xqueue']);
  });

  it('lets a browser login evict the API session of the same account without a path rule', async () => {
    lms = await create();
    const api = new TestClient(lms.fetcher);
    const browser = new TestClient(lms.fetcher);
    expect((await api.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await browser.webLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    expect((await api.get(QUEUELEN)).status).toBe(403);
    expect((await browser.get('/me')).status).toBe(200);
  });

  it('logs one line per eviction and counts logins and evictions by account', async () => {
    const { lms, second } = await twoGraders();
    const evictions = lms.logs.filter((line) => line.event === 'eviction');
    expect(evictions).toEqual([
      expect.objectContaining({
        account: 'xqueue_svc',
        evicted: expect.stringMatching(/^[0-9a-f]{8}$/),
        session: expect.stringMatching(/^[0-9a-f]{8}$/),
      }),
    ]);
    const text = await metrics(second);
    expect(text).toContain('lms_logins_total{account="xqueue_svc",path="xqueue"} 2');
    expect(text).toContain('lms_sessions_evicted_total{account="xqueue_svc"} 1');
  });

  it.each<[string, PolicySettingsInput]>([
    ['username', { exemptUsernames: ['xqueue_svc'] }],
    ['group', { exemptGroups: ['xqueue'] }],
  ])(
    'keeps both clients working for an account exempt by %s, recording no slot',
    async (_, policy) => {
      const { lms, first, second } = await twoGraders({ policy });
      expect((await first.get(QUEUELEN)).status).toBe(200);
      expect((await second.get(QUEUELEN)).status).toBe(200);
      expect(slotOf(lms, 'xqueue_svc')).toBeUndefined();
      expect(await liveSessions(lms)).toBe(2);
      expect(count(lms, 'session_ends')).toBe(0);
      expect(await metrics(first)).not.toContain('lms_sessions_evicted_total{');
    },
  );

  it('evicts nothing when PREVENT_CONCURRENT_LOGINS is off', async () => {
    const { lms, first, second } = await twoGraders({ policy: { preventConcurrentLogins: false } });
    expect((await first.get(QUEUELEN)).status).toBe(200);
    expect((await second.get(QUEUELEN)).status).toBe(200);
    expect(count(lms, 'session_ends')).toBe(0);
  });

  it('keeps a student single-session while the service account is exempt', async () => {
    const { lms, first, second } = await twoGraders({ policy: { exemptGroups: ['xqueue'] } });
    const laptop = new TestClient(lms.fetcher);
    const phone = new TestClient(lms.fetcher);
    expect((await laptop.webLogin('student1', 'student-pass')).status).toBe(200);
    expect((await phone.webLogin('student1', 'student-pass')).status).toBe(200);
    const evicted = await laptop.get('/me');
    expect(evicted.status).toBe(401);
    expect(await evicted.json()).toMatchObject({ session_end: { reason: 'evicted' } });
    expect(await (await phone.get('/me')).json()).toMatchObject({ username: 'student1' });
    expect(slotOf(lms, 'student1')).toMatch(/^[0-9a-f]{64}$/);
    expect((await first.get(QUEUELEN)).status).toBe(200);
    expect((await second.get(QUEUELEN)).status).toBe(200);
  });

  it('replaces only the same worker under instance scope', async () => {
    lms = await create({ policy: { scope: 'instance' } });
    const workers = ['a', 'b', 'a'].map(() => new TestClient(lms!.fetcher));
    for (const [index, name] of ['worker-a', 'worker-b', 'worker-a'].entries()) {
      await workers[index]!.xqueueLogin('xqueue_svc', 'xqueue-pass', { 'X-Client-Instance': name });
    }
    const statuses = await Promise.all(
      workers.map(async (worker) => (await worker.get(QUEUELEN)).status),
    );
    expect(statuses).toEqual([403, 200, 200]);
  });

  it('reports but keeps evictions in dry run', async () => {
    const { lms, first } = await twoGraders({ policy: { dryRun: true } });
    expect((await first.get(QUEUELEN)).status).toBe(200);
    expect(lms.logs.filter((line) => line.event === 'eviction-dry-run')).toHaveLength(1);
    // Counted as a would-be eviction, and not as an eviction.
    const metrics = await (await first.get('/metrics')).text();
    expect(metrics).toContain('lms_dry_run_evictions_total{account="xqueue_svc"} 1');
    expect(metrics).not.toMatch(/lms_sessions_evicted_total\{[^}]*\} [1-9]/);
  });

  it('raises a storm alert naming the account and the fix', async () => {
    lms = await create({ config: { stormAlertEvictionsPerMinute: 3 } });
    for (let index = 0; index < 4; index++) {
      await new TestClient(lms.fetcher).xqueueLogin('xqueue_svc', 'xqueue-pass');
    }
    const alerts = lms.logs.filter((line) => line.event === 'storm-alert');
    expect(alerts).toEqual([
      expect.objectContaining({
        account: 'xqueue_svc',
        suggestion: 'SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc',
      }),
    ]);
    expect(await metrics(new TestClient(lms.fetcher))).toContain(
      'lms_storm_alerts_total{account="xqueue_svc"} 1',
    );
  });

  it('says logged-out to a client whose session was logged out', async () => {
    lms = await create();
    const grader = new TestClient(lms.fetcher);
    await grader.xqueueLogin('xqueue_svc', 'xqueue-pass');
    const cookie = grader.cookies.get('sessionid')!;
    expect(await (await grader.postForm('/xqueue/logout/', {})).json()).toEqual({
      return_code: 0,
      content: 'Goodbye',
    });
    grader.cookies.set('sessionid', cookie);
    const response = await grader.get(QUEUELEN);
    expect(response.status).toBe(403);
    expect(response.headers.get('X-Session-End-Reason')).toBe('logged-out');
  });

  it('denies a new login at the limit under deny-new', async () => {
    lms = await create({ policy: { onLimit: 'deny-new' } });
    const first = new TestClient(lms.fetcher);
    await first.xqueueLogin('xqueue_svc', 'xqueue-pass');
    const denied = await new TestClient(lms.fetcher).xqueueLogin('xqueue_svc', 'xqueue-pass');
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({
      return_code: 1,
      content: 'Session limit reached for this account',
    });
    expect((await first.get(QUEUELEN)).status).toBe(200);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import {
  createTestLms,
  type TestLms,
  type TestLmsOptions,
  TRANSPORTS,
} from '../testing/fixtures.ts';
import { useTestRedis } from '../testing/redis.ts';
import {
  browserOf,
  currentShortId,
  endedReason,
  listed,
  storedSessionIds,
  tombstoneOf,
} from '../testing/sessions.ts';
import { findCredentials } from '../users.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());
const redis = useTestRedis();

/** Both transports with SQLite sessions, and SESSION_STORE=redis over a real socket. */
const SETUPS = [
  ...TRANSPORTS.map((transport) => ({ transport, store: 'sqlite' })),
  { transport: 'socket', store: 'redis' },
] as const;

const SHORT_ID = /^[0-9a-f]{8}$/;

function remove(client: TestClient, short: string) {
  return client.request(`/api/sessions/${short}`, { method: 'DELETE' });
}

describe.each(SETUPS)('own sessions over $transport, sessions in $store', (setup) => {
  // Several sessions of one account stay live side by side.
  const create = (options: TestLmsOptions = {}) =>
    createTestLms({
      policy: { maxSessions: 5 },
      ...options,
      transport: setup.transport,
      redisUrl: setup.store === 'redis' ? redis.url() : undefined,
    });

  /** student1 on a phone, then (a second later) on a laptop; student2 elsewhere. */
  async function devices() {
    lms = await create();
    const phone = await browserOf(lms, 'student1', { 'User-Agent': 'phone/1.0' });
    lms.clock.advance(1000);
    const laptop = await browserOf(lms, 'student1', { 'User-Agent': 'laptop/2.0' });
    const other = await browserOf(lms, 'student2');
    return { lms, phone, laptop, other };
  }

  it("lists only the caller's live sessions, oldest first, marks the current one, shows no full id", async () => {
    const { lms, phone, laptop, other } = await devices();
    const response = await laptop.get('/api/sessions');
    const text = await response.text();
    for (const id of await storedSessionIds(lms)) expect(text).not.toContain(id);
    const { sessions } = JSON.parse(text) as { sessions: Record<string, unknown>[] };
    const address = setup.transport === 'socket' ? '127.0.0.1' : 'unknown';
    expect(sessions).toEqual([
      {
        id: expect.stringMatching(SHORT_ID),
        created: '2025-01-01T00:00:00.000Z',
        last_seen: '2025-01-01T00:00:00.000Z',
        client_instance: null,
        user_agent: 'phone/1.0',
        address,
        pool: 'default',
        current: false,
      },
      {
        id: expect.stringMatching(SHORT_ID),
        created: '2025-01-01T00:00:01.000Z',
        last_seen: '2025-01-01T00:00:01.000Z',
        client_instance: null,
        user_agent: 'laptop/2.0',
        address,
        pool: 'default',
        current: true,
      },
    ]);
    const student1 = findCredentials(lms.database.db, 'student1')!.id;
    const owned = await lms.sessions.details(student1);
    expect(sessions.map((session) => session.id).sort()).toEqual(
      owned.map((session) => session.id.slice(0, 8)).sort(),
    );
    expect((await listed(phone)).map((session) => session.current)).toEqual([true, false]);
    expect(await listed(other)).toEqual([expect.objectContaining({ current: true })]);
  });

  it('records the instance, the user agent cut to 256 characters, and the address under TRUST_PROXY', async () => {
    lms = await create({ config: { trustProxy: ['loopback'] } });
    const browser = await browserOf(lms, 'student1', {
      'User-Agent': `Mozilla/5.0 ${'x'.repeat(300)}`,
      'X-Forwarded-For': '198.51.100.1, 203.0.113.7',
    });
    const grader = new TestClient(lms.fetcher);
    grader.headers['User-Agent'] = 'python-requests/2.32.3';
    await grader.xqueueLogin('xqueue_svc', 'xqueue-pass', { 'X-Client-Instance': 'watcher-2' });
    const [web] = await listed(browser);
    expect(web?.user_agent).toBe(`Mozilla/5.0 ${'x'.repeat(300)}`.slice(0, 256));
    // X-Forwarded-For counts from a proxy's socket (loopback); app.request() has no socket.
    expect(web?.address).toBe(setup.transport === 'socket' ? '203.0.113.7' : 'unknown');
    expect(await listed(grader)).toEqual([
      expect.objectContaining({
        client_instance: 'watcher-2',
        user_agent: 'python-requests/2.32.3',
        address: setup.transport === 'socket' ? '127.0.0.1' : 'unknown',
      }),
    ]);
  });

  it('ends another of my sessions: its next request is told "user", the rest stay', async () => {
    const { lms, phone, laptop, other } = await devices();
    const target = await currentShortId(phone);
    const response = await remove(laptop, target);
    expect(response.status).toBe(204);
    expect(await endedReason(phone)).toEqual({ status: 403, header: 'user', reason: 'user' });
    expect(tombstoneOf(lms, target)).toEqual({ reason: 'user', endedBy: 'student1' });
    expect(await listed(laptop)).toEqual([expect.objectContaining({ current: true })]);
    expect((await other.get('/api/sessions')).status).toBe(200);
    expect(lms.logs).toContainEqual(
      expect.objectContaining({
        event: 'session-end',
        account: 'student1',
        session: target,
        reason: 'user',
        by: 'student1',
      }),
    );
  });

  it('refuses a delete without the CSRF token and ends nothing', async () => {
    const { phone, laptop } = await devices();
    const target = await currentShortId(phone);
    delete laptop.headers['X-CSRFToken'];
    const response = await remove(laptop, target);
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ detail: 'CSRF Failed: CSRF token missing.' });
    expect((await phone.get('/api/sessions')).status).toBe(200);
  });

  it("answers 404 to another user's short id, an unknown one and a full id, ending nothing", async () => {
    const { lms, laptop, other } = await devices();
    const others = await currentShortId(other);
    const [fullId] = await storedSessionIds(lms);
    for (const id of [others, 'ffffffff', fullId!, others.toUpperCase()]) {
      const response = await laptop.request(`/api/sessions/${id}`, { method: 'DELETE' });
      expect(response.status, id).toBe(404);
    }
    expect((await other.get('/api/sessions')).status).toBe(200);
    expect(await storedSessionIds(lms)).toHaveLength(3);
  });

  it('logs the caller out when the session it deletes is its own current one', async () => {
    const { lms, phone, laptop } = await devices();
    const own = await currentShortId(laptop);
    const cookie = laptop.cookies.get('sessionid')!;
    const response = await remove(laptop, own);
    expect(response.status).toBe(204);
    expect(laptop.cookies.has('sessionid')).toBe(false);
    expect(tombstoneOf(lms, own)).toEqual({ reason: 'logged-out', endedBy: 'student1' });
    laptop.cookies.set('sessionid', cookie);
    expect(await endedReason(laptop)).toMatchObject({ status: 403, reason: 'logged-out' });
    expect((await phone.get('/api/sessions')).status).toBe(200);
  });

  it('ends all my other sessions and keeps the current one', async () => {
    const { lms, phone, laptop, other } = await devices();
    const tablet = await browserOf(lms, 'student1');
    const ends = await laptop.request('/api/sessions/end-others', { method: 'POST' });
    expect(await ends.json()).toEqual({ ended: 2 });
    for (const ended of [phone, tablet]) {
      expect(await endedReason(ended)).toEqual({ status: 403, header: 'user', reason: 'user' });
    }
    expect(await listed(laptop)).toEqual([expect.objectContaining({ current: true })]);
    expect((await other.get('/api/sessions')).status).toBe(200);
    const again = await laptop.request('/api/sessions/end-others', { method: 'POST' });
    expect(await again.json()).toEqual({ ended: 0 });
  });

  it('refuses end-others without the CSRF token and an anonymous caller', async () => {
    const { phone, laptop } = await devices();
    delete laptop.headers['X-CSRFToken'];
    const refused = await laptop.request('/api/sessions/end-others', { method: 'POST' });
    expect(refused.status).toBe(403);
    expect((await phone.get('/api/sessions')).status).toBe(200);
    const anonymous = await new TestClient(lms!.fetcher).get('/api/sessions');
    expect(anonymous.status).toBe(403);
    expect(await anonymous.json()).toEqual({
      detail: 'Authentication credentials were not provided.',
    });
  });
});

describe('session ends and who ended them', () => {
  it('answers 409 when two of my sessions share the short id, and ends neither', async () => {
    lms = await createTestLms();
    const browser = await browserOf(lms, 'student1');
    const student1 = findCredentials(lms.database.db, 'student1')!.id;
    const insert = lms.database.sqlite.prepare(
      `INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, tracked)
       VALUES (?, ?, 0, ?, 0, 0)`,
    );
    const far = lms.clock.now() + 3_600_000;
    insert.run(`abcdef01${'a'.repeat(56)}`, student1, far);
    insert.run(`abcdef01${'b'.repeat(56)}`, student1, far);
    const response = await remove(browser, 'abcdef01');
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({
      detail: 'Short id abcdef01 names more than one session',
    });
    expect(await listed(browser)).toHaveLength(3);
  });

  it('names the user on a logout and no one on an eviction', async () => {
    lms = await createTestLms();
    const first = await browserOf(lms, 'student1');
    const evicted = await currentShortId(first);
    const second = await browserOf(lms, 'student1');
    const loggedOut = await currentShortId(second);
    expect((await second.postJson('/logout', {})).status).toBe(200);
    expect(tombstoneOf(lms, evicted)).toEqual({ reason: 'evicted', endedBy: null });
    expect(tombstoneOf(lms, loggedOut)).toEqual({ reason: 'logged-out', endedBy: 'student1' });
  });

  it('records the user agent and address under SINGLE_LOGIN_ENFORCEMENT=upstream too', async () => {
    lms = await createTestLms({ config: { enforcement: 'upstream' } });
    const browser = await browserOf(lms, 'student1', { 'User-Agent': 'upstream/1.0' });
    expect(await listed(browser)).toEqual([
      expect.objectContaining({ user_agent: 'upstream/1.0', address: 'unknown', current: true }),
    ]);
  });
});

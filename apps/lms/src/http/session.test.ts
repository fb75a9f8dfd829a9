import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../auth/password.ts';
import { sessionIdOf, shortId } from '../auth/tokens.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, TEST_ITERATIONS, type TestLms } from '../testing/fixtures.ts';
import { useTestRedis } from '../testing/redis.ts';
import { upsertUser } from '../users.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());
const redis = useTestRedis();

/** The Set-Cookie line of `name`, split into its attributes (lowercased names). */
function cookieOf(response: Response, name: string) {
  const line = response.headers.getSetCookie().find((entry) => entry.startsWith(`${name}=`));
  if (!line) throw new Error(`no ${name} cookie in ${response.headers.getSetCookie()}`);
  const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
  const flags = new Map(
    attributes.map((attribute) => {
      const [key = '', value = ''] = attribute.split('=');
      return [key.toLowerCase(), value] as const;
    }),
  );
  return { value: pair.slice(name.length + 1), flags };
}

type Login = (client: TestClient, headers: Record<string, string>) => Promise<Response>;

const LOGINS: [string, Login][] = [
  [
    'xqueue',
    async (client, headers) => {
      await client.get('/xqueue/login/', headers);
      const fields = { username: 'xqueue_svc', password: 'xqueue-pass' };
      return client.postForm('/xqueue/login/', fields, headers);
    },
  ],
  [
    'web',
    async (client, headers) => {
      await client.get('/login', headers);
      const csrf = client.cookies.get('csrftoken')!;
      const fields = { username: 'student1', password: 'student-pass', csrfmiddlewaretoken: csrf };
      return client.postForm('/login', fields, headers);
    },
  ],
];

describe('session and CSRF cookies', () => {
  it.each(LOGINS)(
    'sets sessionid HttpOnly, SameSite=Lax, Path=/ and not Secure over plain HTTP (%s login)',
    async (_, login) => {
      lms = await createTestLms();
      const response = await login(new TestClient(lms.fetcher), {});
      const { value, flags } = cookieOf(response, 'sessionid');
      expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(flags.has('httponly')).toBe(true);
      expect(flags.get('samesite')).toBe('Lax');
      expect(flags.get('path')).toBe('/');
      expect(flags.get('max-age')).toBe('1209600');
      expect(flags.has('secure')).toBe(false);
    },
  );

  it.each(LOGINS)(
    'marks every cookie Secure behind a TLS proxy with TRUST_PROXY (%s login)',
    async (_, login) => {
      // The proxy on loopback (TRUST_PROXY=loopback) forwards over a real socket.
      lms = await createTestLms({ transport: 'socket', config: { trustProxy: ['loopback'] } });
      const client = new TestClient(lms.fetcher);
      const csrf = await client.request('/xqueue/login/', {
        headers: { 'x-forwarded-proto': 'https' },
      });
      expect(cookieOf(csrf, 'csrftoken').flags.has('secure')).toBe(true);
      client.cookies.clear();
      const response = await login(client, { 'x-forwarded-proto': 'https' });
      expect(cookieOf(response, 'sessionid').flags.has('secure')).toBe(true);
      // The token rotated by the login, too.
      expect(cookieOf(response, 'csrftoken').flags.has('secure')).toBe(true);
    },
  );

  it.each(LOGINS)(
    "ignores a client's X-Forwarded-Proto without TRUST_PROXY (%s login)",
    async (_, login) => {
      lms = await createTestLms();
      const client = new TestClient(lms.fetcher);
      const forged = { 'x-forwarded-proto': 'https' };
      for (const path of ['/login', '/xqueue/login/', '/dashboard/login']) {
        const page = await new TestClient(lms.fetcher).get(path, forged);
        expect(cookieOf(page, 'csrftoken').flags.has('secure'), path).toBe(false);
      }
      const response = await login(client, forged);
      expect(response.status).toBe(200);
      expect(cookieOf(response, 'sessionid').flags.has('secure')).toBe(false);
      expect(cookieOf(response, 'csrftoken').flags.has('secure')).toBe(false);
    },
  );

  it('marks cookies Secure when the request URL itself is https', async () => {
    lms = await createTestLms();
    const response = await lms.app.request('https://lms.example/xqueue/login/', {
      method: 'POST',
      body: new URLSearchParams({ username: 'xqueue_svc', password: 'xqueue-pass' }),
    });
    expect(cookieOf(response, 'sessionid').flags.has('secure')).toBe(true);
  });

  it('sets csrftoken readable by scripts (not HttpOnly), SameSite=Lax, Path=/', async () => {
    lms = await createTestLms();
    for (const path of ['/login', '/xqueue/login/']) {
      const { value, flags } = cookieOf(await lms.app.request(path), 'csrftoken');
      expect(value).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(flags.has('httponly')).toBe(false);
      expect(flags.get('samesite')).toBe('Lax');
      expect(flags.get('path')).toBe('/');
    }
  });

  it('stores only the hash of the session token: no table holds the cookie value', async () => {
    lms = await createTestLms();
    const client = new TestClient(lms.fetcher);
    await client.xqueueLogin('xqueue_svc', 'xqueue-pass');
    const token = client.cookies.get('sessionid')!;
    const { sqlite } = lms.database;
    const tables = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
      name: string;
    }[];
    const dump = JSON.stringify(
      tables.map(({ name }) => sqlite.prepare(`SELECT * FROM "${name}"`).all()),
    );
    expect(dump).not.toContain(token);
    expect(dump).toContain(sessionIdOf(token));
  });
});

describe.each(['sqlite', 'redis'] as const)('a password change, sessions in %s', (store) => {
  it('refuses every session issued before it, on every route, and logs each ending once', async () => {
    lms = await createTestLms({
      policy: { exemptUsernames: ['xqueue_svc'] },
      redisUrl: redis.urlFor(store),
    });
    const graders = [new TestClient(lms.fetcher), new TestClient(lms.fetcher)];
    for (const grader of graders) {
      expect((await grader.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
    }
    const student = new TestClient(lms.fetcher);
    expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
    // As a shell reaching neither store would: only the users row changes (a SQLite store's
    // sessions would end with it, in its transaction; this one leaves them).
    const passwordHash = await hashPassword('new-pass', TEST_ITERATIONS);
    lms.database.sqlite
      .prepare("UPDATE users SET password = ? WHERE username = 'xqueue_svc'")
      .run(passwordHash);

    const queueLength = '/xqueue/get_queuelen/?queue_name=test-queue';
    for (const grader of graders) {
      for (let request = 0; request < 2; request++) {
        const refused = await grader.get(queueLength);
        expect(refused.status).toBe(403);
        expect(refused.headers.get('x-session-end-reason')).toBe('password-change');
        expect(await refused.json()).toEqual({
          detail: 'Authentication credentials were not provided.',
          session_end: { reason: 'password-change', at: new Date(lms.clock.now()).toISOString() },
        });
      }
    }
    const ends = lms.logs.filter((line) => line.event === 'session-end');
    const shortIds = graders.map((grader) =>
      shortId(sessionIdOf(grader.cookies.get('sessionid')!)),
    );
    expect(ends).toEqual(
      shortIds.map((session) =>
        expect.objectContaining({ account: 'xqueue_svc', session, reason: 'password-change' }),
      ),
    );
    expect((await student.get('/me')).status).toBe(200);
    const again = new TestClient(lms.fetcher);
    expect((await again.xqueueLogin('xqueue_svc', 'new-pass')).status).toBe(200);
    expect((await again.get(queueLength)).status).toBe(200);
  });

  it('ends the sessions upsertUser does not reach, for a store it does not write', async () => {
    lms = await createTestLms({ redisUrl: redis.urlFor(store) });
    const student = new TestClient(lms.fetcher);
    expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
    const passwordHash = await hashPassword('new-pass', TEST_ITERATIONS);
    upsertUser(lms.database.db, { username: 'student1', passwordHash, now: lms.clock.now() });
    const me = await student.get('/me');
    expect(me.status).toBe(401);
    expect(me.headers.get('x-session-end-reason')).toBe('password-change');
  });
});

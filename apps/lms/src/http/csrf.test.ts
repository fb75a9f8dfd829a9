import { afterEach, describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from '../env.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';
import { storedState } from '../testing/hostile.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

/** Every state-changing route the app registers, params filled in. */
function unsafeRoutes(lms: TestLms): string[] {
  const routes = lms.app.routes
    .filter((route) => !['GET', 'HEAD', 'ALL', 'OPTIONS'].includes(route.method))
    .map((route) => `${route.method} ${route.path.replace(/:[^/]+/g, '1')}`);
  return [...new Set(routes)];
}

const CASES: [string, (client: TestClient) => void, string][] = [
  [
    'no X-CSRFToken',
    (client) => {
      delete client.headers['X-CSRFToken'];
    },
    'CSRF Failed: CSRF token missing.',
  ],
  [
    'a wrong X-CSRFToken',
    (client) => {
      client.headers['X-CSRFToken'] = 'x'.repeat(32);
    },
    'CSRF Failed: CSRF token incorrect.',
  ],
  [
    'no csrftoken cookie',
    (client) => {
      client.cookies.delete('csrftoken');
    },
    'CSRF Failed: CSRF cookie not set.',
  ],
];

describe('CSRF on state-changing routes', () => {
  it.each(CASES)(
    'refuses every unsafe route of a logged-in browser with %s, changing nothing',
    async (_, spoil, detail) => {
      lms = await createTestLms();
      const routes = unsafeRoutes(lms);
      expect(routes).toEqual(
        expect.arrayContaining([
          'POST /login',
          'POST /logout',
          'POST /api/submissions',
          'POST /xqueue/login/',
          'POST /xqueue/logout/',
          'POST /xqueue/put_result/',
        ]),
      );
      for (const account of ['staff', 'student1']) {
        const browser = new TestClient(lms.fetcher);
        const password = account === 'staff' ? 'staff-pass' : 'student-pass';
        expect((await browser.webLogin(account, password)).status).toBe(200);
        spoil(browser);
        for (const route of routes) {
          const [method = '', path = ''] = route.split(' ');
          const before = storedState(lms.database.sqlite);
          const response = await browser.request(path, {
            method,
            body: JSON.stringify({ username: account, password }),
            headers: { 'content-type': 'application/json' },
          });
          expect([response.status, await response.json()], `${account} ${route}`).toEqual([
            403,
            { detail },
          ]);
          expect(storedState(lms.database.sqlite)).toEqual(before);
        }
      }
    },
  );

  it('checks CSRF on the anonymous web login (login CSRF) but not on the xqueue login, as DRF', async () => {
    lms = await createTestLms();
    const fields = { username: 'xqueue_svc', password: 'xqueue-pass' };
    const web = await new TestClient(lms.fetcher).postForm('/login', fields);
    expect(web.status).toBe(403);
    const xqueue = await new TestClient(lms.fetcher).postForm('/xqueue/login/', fields);
    expect(xqueue.status).toBe(200);
  });
});

const EVIL = 'https://evil.example';
const originFailed = (origin: string) =>
  `CSRF Failed: Origin checking failed - ${origin} does not match any trusted origins.`;
const refererFailed = (referer: string) =>
  `CSRF Failed: Referer checking failed - ${referer} does not match any trusted origins.`;
const CREDENTIALS = { username: 'xqueue_svc', password: 'xqueue-pass' };

/** The two login POSTs a page on another site could aim at, each with its own error shape. */
const LOGINS: [string, { page: string; post: string; error: (message: string) => unknown }][] = [
  [
    'POST /xqueue/login/',
    {
      page: '/xqueue/login/',
      post: '/xqueue/login/',
      error: (message) => ({ return_code: 1, content: message }),
    },
  ],
  ['POST /login', { page: '/login', post: '/login', error: (message) => ({ detail: message }) }],
];

type LoginRoute = (typeof LOGINS)[number][1];

/** GET the login page for the token, then POST the credentials with it and `headers`. */
async function loginWithToken(client: TestClient, route: LoginRoute, headers = {}) {
  await client.get(route.page);
  const token = client.cookies.get('csrftoken')!;
  const fields = { ...CREDENTIALS, csrfmiddlewaretoken: token };
  return client.postForm(route.post, fields, { 'X-CSRFToken': token, ...headers });
}

function sessionCount(lms: TestLms): number {
  const row = lms.database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get();
  return (row as { n: number }).n;
}

describe('Origin and Referer checks on the login POSTs (login CSRF, as Django 4)', () => {
  it('refuses a cross-site form POST to /xqueue/login/ without cookie or token, in the envelope', async () => {
    lms = await createTestLms();
    const response = await lms.app.request('/xqueue/login/', {
      method: 'POST',
      body: new URLSearchParams(CREDENTIALS),
      headers: { origin: EVIL },
    });
    expect([response.status, await response.json()]).toEqual([
      403,
      { return_code: 1, content: originFailed(EVIL) },
    ]);
    expect(response.headers.getSetCookie().join()).not.toContain('sessionid=');
    expect(sessionCount(lms)).toBe(0);
  });

  it.each(LOGINS)(
    'refuses %s from a foreign Origin even with a matching token, and logs no one in',
    async (_, route) => {
      lms = await createTestLms();
      const client = new TestClient(lms.fetcher);
      for (const origin of [EVIL, 'null', 'http://localhost:8000', 'https://localhost']) {
        const response = await loginWithToken(client, route, { origin });
        expect([response.status, await response.json()], origin).toEqual([
          403,
          route.error(originFailed(origin)),
        ]);
      }
      expect(client.cookies.has('sessionid')).toBe(false);
      expect(sessionCount(lms)).toBe(0);
    },
  );

  it.each(LOGINS)(
    'refuses %s with a foreign or malformed Referer and no Origin',
    async (_, route) => {
      lms = await createTestLms();
      const client = new TestClient(lms.fetcher);
      const foreign = await loginWithToken(client, route, { referer: `${EVIL}/page` });
      expect([foreign.status, await foreign.json()]).toEqual([
        403,
        route.error(refererFailed(`${EVIL}/page`)),
      ]);
      const malformed = await loginWithToken(client, route, { referer: 'not a url' });
      expect([malformed.status, await malformed.json()]).toEqual([
        403,
        route.error('CSRF Failed: Referer checking failed - Referer is malformed.'),
      ]);
      expect(sessionCount(lms)).toBe(0);
    },
  );

  it.each(LOGINS)('lets %s in from its own origin, by Origin or Referer', async (_, route) => {
    lms = await createTestLms();
    // app.request() addresses the app as http://localhost.
    for (const headers of [
      { origin: 'http://localhost' },
      { referer: `http://localhost${route.page}` },
      { origin: 'http://localhost', referer: `${EVIL}/ignored-when-origin-is-present` },
    ]) {
      const client = new TestClient(lms.fetcher);
      expect((await loginWithToken(client, route, headers)).status, JSON.stringify(headers)).toBe(
        200,
      );
    }
  });

  it('still lets a non-browser client (no Origin, no Referer, no token) log in to xqueue', async () => {
    lms = await createTestLms();
    const response = await new TestClient(lms.fetcher).postForm('/xqueue/login/', CREDENTIALS);
    expect(response.status).toBe(200);
  });

  it.each(LOGINS)('lets %s in from an origin in CSRF_TRUSTED_ORIGINS only', async (_, route) => {
    lms = await createTestLms({
      config: { csrfTrustedOrigins: ['https://partner.example', 'http://10.0.0.5:8080'] },
    });
    for (const headers of [
      { origin: 'https://partner.example' },
      { origin: 'http://10.0.0.5:8080' },
      { referer: 'https://partner.example/courses/1' },
    ]) {
      const client = new TestClient(lms.fetcher);
      expect((await loginWithToken(client, route, headers)).status, JSON.stringify(headers)).toBe(
        200,
      );
    }
    for (const origin of [EVIL, 'http://partner.example', 'http://10.0.0.5:8081']) {
      const response = await loginWithToken(new TestClient(lms.fetcher), route, { origin });
      expect(response.status, origin).toBe(403);
    }
  });

  it.each(LOGINS)(
    'takes the own origin from X-Forwarded-Proto/Host for %s only when TRUST_PROXY',
    async (_, route) => {
      const proxied = {
        origin: 'https://lms.example',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'lms.example',
      };
      // The proxy on loopback (TRUST_PROXY=loopback) forwards over a real socket.
      lms = await createTestLms({ transport: 'socket', config: { trustProxy: ['loopback'] } });
      expect((await loginWithToken(new TestClient(lms.fetcher), route, proxied)).status).toBe(200);
      await lms.close();
      lms = await createTestLms();
      const direct = await loginWithToken(new TestClient(lms.fetcher), route, proxied);
      expect([direct.status, await direct.json()]).toEqual([
        403,
        route.error(originFailed('https://lms.example')),
      ]);
    },
  );
});

describe('POST /logout from another site (logout CSRF)', () => {
  it('refuses an anonymous logout from a foreign Origin and leaves the cookie alone', async () => {
    lms = await createTestLms();
    const browser = new TestClient(lms.fetcher);
    expect((await browser.webLogin('student1', 'student-pass')).status).toBe(200);
    // Evicted elsewhere: the browser is anonymous, its cookie says why the session ended.
    lms.database.sqlite.prepare('DELETE FROM sessions').run();
    const cookie = browser.cookies.get('sessionid');
    const response = await browser.request('/logout', {
      method: 'POST',
      headers: { origin: EVIL },
    });
    expect([response.status, await response.json()]).toEqual([403, { detail: originFailed(EVIL) }]);
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(browser.cookies.get('sessionid')).toBe(cookie);
    const own = await browser.request('/logout', {
      method: 'POST',
      headers: { origin: 'http://localhost' },
    });
    expect(own.status).toBe(200);
    expect(browser.cookies.has('sessionid')).toBe(false);
  });

  it('refuses a logged-in logout from a foreign Origin even with the token', async () => {
    lms = await createTestLms();
    const browser = new TestClient(lms.fetcher);
    await browser.webLogin('student1', 'student-pass');
    const response = await browser.request('/logout', {
      method: 'POST',
      headers: { referer: `${EVIL}/` },
    });
    expect([response.status, await response.json()]).toEqual([
      403,
      { detail: refererFailed(`${EVIL}/`) },
    ]);
    expect((await browser.get('/me')).status).toBe(200);
  });
});

describe('CSRF token rotation on login (as Django)', () => {
  it.each(LOGINS)(
    'sets a new csrftoken on a successful %s; the old token no longer passes',
    async (_, route) => {
      lms = await createTestLms();
      const client = new TestClient(lms.fetcher);
      await client.get(route.page);
      const before = client.cookies.get('csrftoken')!;
      const fields = { ...CREDENTIALS, csrfmiddlewaretoken: before };
      const login = await client.postForm(route.post, fields, { 'X-CSRFToken': before });
      expect(login.status).toBe(200);
      const after = client.cookies.get('csrftoken');
      expect(after).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(after).not.toBe(before);
      const stale = await client.postForm('/xqueue/status/', {}, { 'X-CSRFToken': before });
      expect([stale.status, await stale.json()]).toEqual([
        403,
        { detail: 'CSRF Failed: CSRF token incorrect.' },
      ]);
      const fresh = await client.postForm('/xqueue/status/', {}, { 'X-CSRFToken': after! });
      expect([fresh.status, await fresh.json()]).toEqual([200, { return_code: 0, content: 'OK' }]);
    },
  );

  it('keeps the token on a failed login', async () => {
    lms = await createTestLms();
    const client = new TestClient(lms.fetcher);
    await client.get('/xqueue/login/');
    const response = await client.postForm('/xqueue/login/', { ...CREDENTIALS, password: 'x' });
    expect(response.status).toBe(401);
    expect(response.headers.getSetCookie()).toEqual([]);
  });
});

describe('CSRF_TRUSTED_ORIGINS', () => {
  it('reads comma-separated origins, normalised; empty by default', () => {
    expect(parseEnv({}, '/').csrfTrustedOrigins).toEqual([]);
    const origins = ' https://LMS.example , http://10.0.0.5:8080/,https://a.example:443 ';
    expect(parseEnv({ CSRF_TRUSTED_ORIGINS: origins }, '/').csrfTrustedOrigins).toEqual([
      'https://lms.example',
      'http://10.0.0.5:8080',
      'https://a.example',
    ]);
  });

  it.each([
    'lms.example',
    'https://lms.example/path',
    'https://lms.example?x=1',
    'ftp://lms.example',
    'https://user@lms.example',
    'https://*.example.com',
    'https://a.example,null',
  ])('refuses %s, naming the variable and the accepted form', (value) => {
    const parse = () => parseEnv({ CSRF_TRUSTED_ORIGINS: value }, '/');
    expect(parse).toThrow(EnvError);
    expect(parse).toThrow(
      `CSRF_TRUSTED_ORIGINS=${JSON.stringify(value)} is invalid: expected comma-separated origins`,
    );
  });
});

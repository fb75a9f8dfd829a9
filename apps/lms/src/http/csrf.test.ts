import { afterEach, describe, expect, it } from 'vitest';
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

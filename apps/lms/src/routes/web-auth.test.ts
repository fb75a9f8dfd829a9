import { afterEach, describe, expect, it } from 'vitest';
import { TestClient, urlFetcher } from '../testing/client.ts';
import { createTestLms, listen, type TestLms } from '../testing/fixtures.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

async function client() {
  lms = await createTestLms();
  return new TestClient(lms.fetcher);
}

describe('human login', () => {
  it('serves a form carrying the CSRF token it sets as a cookie', async () => {
    const browser = await client();
    const page = await (await browser.get('/login')).text();
    const token = browser.cookies.get('csrftoken');
    expect(token).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(page).toContain(`name="csrfmiddlewaretoken" value="${token}"`);
  });

  it('lets no other site frame the login page or any other HTML page (clickjacking)', async () => {
    const browser = await client();
    const staff = new TestClient(lms!.fetcher);
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
    const student = new TestClient(lms!.fetcher);
    expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
    const pages = [
      ['/login', browser],
      ['/dashboard/login', browser],
      ['/dashboard', staff],
      ['/dashboard', student],
    ] as const;
    for (const [path, visitor] of pages) {
      const response = await visitor.get(path);
      expect(response.headers.get('content-type'), path).toMatch(/^text\/html/);
      expect(response.headers.get('x-frame-options'), path).toBe('DENY');
      const policy = response.headers.get('content-security-policy') ?? '';
      expect(
        policy.split(';').map((part) => part.trim()),
        path,
      ).toContain("frame-ancestors 'none'");
    }
  });

  it('logs in with the form field token, then /me shows the user', async () => {
    const browser = await client();
    expect((await browser.get('/me')).status).toBe(401);
    const response = await browser.webLogin('student1', 'student-pass');
    expect(await response.json()).toEqual({ detail: 'Logged in', username: 'student1' });
    expect(await (await browser.get('/me')).json()).toEqual({
      username: 'student1',
      groups: [],
      is_staff: false,
    });
  });

  it('logs in with JSON and the X-CSRFToken header', async () => {
    const browser = await client();
    await browser.get('/login');
    const headers = { 'X-CSRFToken': browser.cookies.get('csrftoken')! };
    const response = await browser.postJson(
      '/login',
      { username: 'xqueue_svc', password: 'xqueue-pass' },
      headers,
    );
    expect(response.status).toBe(200);
    expect(await (await browser.get('/me')).json()).toMatchObject({ groups: ['xqueue'] });
    expect(await (await browser.get('/metrics')).text()).toContain(
      'lms_logins_total{account="xqueue_svc",path="web"} 1',
    );
  });

  it('refuses a login without the CSRF cookie or token', async () => {
    const browser = await client();
    const noCookie = await browser.postForm('/login', {
      username: 'student1',
      password: 'student-pass',
    });
    expect(noCookie.status).toBe(403);
    expect(await noCookie.json()).toEqual({ detail: 'CSRF Failed: CSRF cookie not set.' });
    await browser.get('/login');
    const noToken = await browser.postForm('/login', {
      username: 'student1',
      password: 'student-pass',
    });
    expect(await noToken.json()).toEqual({ detail: 'CSRF Failed: CSRF token missing.' });
    expect((await browser.get('/me')).status).toBe(401);
  });

  it('answers 401 for bad credentials and 400 for missing fields', async () => {
    const browser = await client();
    await browser.get('/login');
    const token = browser.cookies.get('csrftoken')!;
    const bad = await browser.postForm('/login', {
      username: 'student1',
      password: 'x',
      csrfmiddlewaretoken: token,
    });
    expect(bad.status).toBe(401);
    const missing = await browser.postForm('/login', {
      username: 'student1',
      csrfmiddlewaretoken: token,
    });
    expect(missing.status).toBe(400);
  });

  it('logs out with the CSRF token and tells the old cookie why', async () => {
    const browser = await client();
    await browser.webLogin('student1', 'student-pass');
    const cookie = browser.cookies.get('sessionid')!;
    expect(
      (
        await browser.request('/logout', {
          method: 'POST',
          headers: { 'X-CSRFToken': 'x'.repeat(32) },
        })
      ).status,
    ).toBe(403);
    expect((await browser.request('/logout', { method: 'POST' })).status).toBe(200);
    expect(browser.cookies.has('sessionid')).toBe(false);
    browser.cookies.set('sessionid', cookie);
    const me = await browser.get('/me');
    expect(me.status).toBe(401);
    expect(me.headers.get('X-Session-End-Reason')).toBe('logged-out');
  });
});

describe('human login from a browser over real HTTP', () => {
  it("accepts the browser's own Origin (the Host it addressed) and refuses another site's", async () => {
    lms = await createTestLms();
    const server = await listen(lms.app);
    try {
      const login = async (origin: string) => {
        const browser = new TestClient(urlFetcher(server.url));
        await browser.get('/login');
        const token = browser.cookies.get('csrftoken')!;
        const fields = { username: 'student1', password: 'student-pass' };
        return browser.postForm('/login', { ...fields, csrfmiddlewaretoken: token }, { origin });
      };
      expect((await login(server.url)).status).toBe(200);
      const foreign = await login('https://evil.example');
      expect([foreign.status, await foreign.json()]).toEqual([
        403,
        {
          detail:
            'CSRF Failed: Origin checking failed - https://evil.example does not match any trusted origins.',
        },
      ]);
    } finally {
      await server.close();
    }
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms, type TestLmsOptions } from '../testing/fixtures.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const WINDOW_SECONDS = 60;

async function throttledLms(config: TestLmsOptions['config'] = {}) {
  lms = await createTestLms({
    config: { loginThrottleFailures: 3, loginThrottleWindowSeconds: WINDOW_SECONDS, ...config },
  });
  return lms;
}

/** An xqueue login from `address` (honoured only with TRUST_PROXY). */
function xqueueLogin(lms: TestLms, username: string, password: string, address?: string) {
  return new TestClient(lms.fetcher).postForm(
    '/xqueue/login/',
    { username, password },
    address ? { 'x-forwarded-for': `203.0.113.9, ${address}` } : {},
  );
}

async function webLogin(lms: TestLms, username: string, password: string) {
  const browser = new TestClient(lms.fetcher);
  await browser.get('/login');
  const csrfmiddlewaretoken = browser.cookies.get('csrftoken')!;
  return browser.postForm('/login', { username, password, csrfmiddlewaretoken });
}

describe('login throttle over HTTP', () => {
  it('answers 429 with Retry-After after LOGIN_THROTTLE_FAILURES failures, on both paths', async () => {
    const lms = await throttledLms();
    for (let index = 0; index < 3; index++) {
      expect((await xqueueLogin(lms, 'xqueue_svc', 'wrong')).status).toBe(401);
    }
    lms.clock.advance(15_000);
    const xqueue = await xqueueLogin(lms, 'xqueue_svc', 'wrong');
    expect(xqueue.status).toBe(429);
    expect(xqueue.headers.get('retry-after')).toBe('45');
    expect(await xqueue.json()).toEqual({
      return_code: 1,
      content: 'Too many failed login attempts, try again in 45 s',
    });
    const web = await webLogin(lms, 'student1', 'student-pass');
    expect(web.status).toBe(429);
    expect(await web.json()).toEqual({
      detail: 'Too many failed login attempts, try again in 45 s',
    });
  });

  it('refuses even the right password while throttled, then lets it in after the window', async () => {
    const lms = await throttledLms();
    for (let index = 0; index < 3; index++) await xqueueLogin(lms, 'xqueue_svc', 'guess');
    expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass')).status).toBe(429);
    lms.clock.advance(WINDOW_SECONDS * 1000);
    expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass')).status).toBe(200);
  });

  it('throttles guesses at an unknown account exactly like a known one', async () => {
    const lms = await throttledLms({ trustProxy: true });
    const answers = [];
    for (const [username, address] of [
      ['xqueue_svc', '10.1.0.1'],
      ['no-such-user', '10.2.0.1'],
    ] as const) {
      for (let index = 0; index < 3; index++) await xqueueLogin(lms, username, 'guess', address);
      const response = await xqueueLogin(lms, username, 'guess', `${address}0`);
      answers.push([response.status, response.headers.get('retry-after'), await response.json()]);
    }
    expect(answers[0]![0]).toBe(429);
    expect(answers[1]).toEqual(answers[0]);
  });

  it('never throttles a storm of successful logins', async () => {
    const lms = await throttledLms({ loginThrottleFailures: 1 });
    const logins = await Promise.all(
      Array.from({ length: 200 }, () => xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass')),
    );
    expect(new Set(logins.map((response) => response.status))).toEqual(new Set([200]));
  });

  it('keeps serving logged-in workers while a misconfigured replica trips the account', async () => {
    const lms = await throttledLms({ trustProxy: true });
    // Good replicas on their own addresses log in; a bad one keeps sending a stale password.
    for (const address of ['10.0.0.1', '10.0.0.2']) {
      expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass', address)).status).toBe(200);
    }
    for (const address of ['10.0.0.9', '10.0.0.10', '10.0.0.11']) {
      expect((await xqueueLogin(lms, 'xqueue_svc', 'old-pass', address)).status).toBe(401);
    }
    // An address that never logged in to the account is held by the account's block...
    expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass', '10.0.0.3')).status).toBe(429);
    // ...but the replicas that already proved the password keep logging in: no lockout.
    for (const address of ['10.0.0.1', '10.0.0.2']) {
      expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass', address)).status).toBe(200);
    }
    // Other accounts are not affected at all.
    expect((await xqueueLogin(lms, 'student1', 'student-pass', '10.0.0.3')).status).toBe(200);
  });

  it('ignores X-Forwarded-For without TRUST_PROXY, so a client cannot rotate addresses', async () => {
    const lms = await throttledLms();
    for (const address of ['10.9.0.1', '10.9.0.2', '10.9.0.3']) {
      expect((await xqueueLogin(lms, 'student1', 'guess', address)).status).toBe(401);
    }
    expect((await xqueueLogin(lms, 'student3', 'guess', '10.9.0.4')).status).toBe(429);
  });
});

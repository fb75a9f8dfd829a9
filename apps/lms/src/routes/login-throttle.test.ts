import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.ts';
import { openDatabase } from '../db/client.ts';
import { appFetcher, TestClient } from '../testing/client.ts';
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

describe('login throttle against parallel and distributed guessing', () => {
  it('counts attempts when they start: 30 parallel wrong passwords get 10 checks', async () => {
    lms = await createTestLms({ config: { loginThrottleFailures: 10 }, transport: 'socket' });
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => xqueueLogin(lms!, 'xqueue_svc', 'guess')),
    );
    const statuses = answers.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 401)).toHaveLength(10);
    expect(statuses.filter((status) => status === 429)).toHaveLength(20);
  });

  it('holds the right password from a new address only a second, not the window', async () => {
    const lms = await throttledLms({ trustProxy: true });
    for (let index = 0; index < 3; index++) {
      expect((await xqueueLogin(lms, 'xqueue_svc', 'guess', '10.5.0.9')).status).toBe(401);
    }
    const replica = await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass', '10.5.0.1');
    expect(replica.status).toBe(429);
    expect(replica.headers.get('retry-after')).toBe('1');
    lms.clock.advance(1_000);
    expect((await xqueueLogin(lms, 'xqueue_svc', 'xqueue-pass', '10.5.0.1')).status).toBe(200);
  });

  it('remembers failures and trusted addresses across a restart and a second process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lms-throttle-'));
    try {
      const path = join(dir, 'lms.sqlite');
      lms = await createTestLms({
        path,
        config: {
          loginThrottleFailures: 3,
          loginThrottleWindowSeconds: WINDOW_SECONDS,
          trustProxy: true,
        },
      });
      const first = lms;
      expect((await xqueueLogin(first, 'xqueue_svc', 'xqueue-pass', '10.6.0.1')).status).toBe(200);
      for (const address of ['10.6.0.7', '10.6.0.8', '10.6.0.9']) {
        expect((await xqueueLogin(first, 'xqueue_svc', 'guess', address)).status).toBe(401);
      }
      // Another LMS process on the same file (or this one, restarted).
      const database = openDatabase({ path });
      try {
        const second = createApp({
          db: database.db,
          config: first.config,
          logger: pino({ level: 'silent' }),
          now: first.clock.now,
        });
        const login = (address: string, password: string) =>
          new TestClient(appFetcher(second)).postForm(
            '/xqueue/login/',
            { username: 'xqueue_svc', password },
            { 'x-forwarded-for': `203.0.113.9, ${address}` },
          );
        expect((await login('10.6.0.1', 'xqueue-pass')).status).toBe(200);
        expect((await login('10.6.0.2', 'xqueue-pass')).status).toBe(429);
        expect((await login('10.6.0.7', 'guess')).status).toBe(429);
      } finally {
        database.close();
      }
    } finally {
      await lms?.close();
      lms = undefined;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

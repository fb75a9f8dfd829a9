import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RedisHandle, startLms, sumMetric, useRedis, waitFor } from '@storm-lab/harness';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../app.ts';
import type { PasswordChecker } from '../auth/login.ts';
import { burnPasswordCheck, hashPassword, verifyPassword } from '../auth/password.ts';
import { openDatabase } from '../db/client.ts';
import {
  type Fetcher,
  localAddressFetcher,
  newConnectionFetcher,
  TestClient,
  urlFetcher,
} from '../testing/client.ts';
import {
  createTestLms,
  listen,
  TEST_ITERATIONS,
  type TestLms,
  type TestLmsOptions,
} from '../testing/fixtures.ts';
import { listed } from '../testing/sessions.ts';

let lms: TestLms | undefined;
let server: { url: string; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await lms?.close();
  lms = undefined;
});

const WINDOW_SECONDS = 60;

async function throttledLms(config: TestLmsOptions['config'] = {}) {
  lms = await createTestLms({
    config: { loginThrottleFailures: 3, loginThrottleWindowSeconds: WINDOW_SECONDS, ...config },
  });
  return lms;
}

/**
 * A throttled LMS on a real socket behind a proxy on 127.0.0.1 (TRUST_PROXY=127.0.0.1): the
 * tests' own requests come through "the proxy" and name their client in X-Forwarded-For.
 */
async function proxiedLms(config: TestLmsOptions['config'] = {}, path?: string) {
  lms = await createTestLms({
    ...(path && { path }),
    config: {
      loginThrottleFailures: 3,
      loginThrottleWindowSeconds: WINDOW_SECONDS,
      trustProxy: ['127.0.0.1'],
      ...config,
    },
  });
  server = await listen(lms.app);
  return { ...lms, url: server.url, fetcher: urlFetcher(server.url) };
}

/** An xqueue login from `address` (honoured only from a TRUST_PROXY peer). */
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
    const lms = await proxiedLms();
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
    const lms = await proxiedLms();
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

  it('reads X-Forwarded-For only from the TRUST_PROXY peer: a direct client changes no address', async () => {
    const { url, ...proxied } = await proxiedLms();
    /** A client that connects from `from`, not through the proxy on 127.0.0.1. */
    const direct = (from: string) => new TestClient(localAddressFetcher(url, from));
    // Fifteen guesses at as many accounts, each naming another address: its own address is
    // blocked after three.
    const rotating = [];
    for (let guess = 0; guess < 15; guess++) {
      const response = await direct('127.0.0.2').postForm(
        '/xqueue/login/',
        { username: `user${guess}`, password: 'guess' },
        { 'x-forwarded-for': `10.9.0.${guess}` },
      );
      rotating.push(response.status);
    }
    expect(rotating).toEqual([401, 401, 401, ...Array<number>(12).fill(429)]);
    // Ten guesses forging the watcher's address do not block the watcher behind the proxy.
    for (let guess = 0; guess < 10; guess++) {
      await direct('127.0.0.3').postForm(
        '/xqueue/login/',
        { username: 'student2', password: 'guess' },
        { 'x-forwarded-for': '10.0.0.5' },
      );
    }
    const watcher = new TestClient(proxied.fetcher);
    const login = await watcher.xqueueLogin('xqueue_svc', 'xqueue-pass', {
      'x-forwarded-for': '10.0.0.5',
    });
    expect(login.status).toBe(200);
    // The session records the address the throttle read: the proxy's client, or the peer.
    const forger = direct('127.0.0.4');
    forger.headers['x-forwarded-for'] = '203.0.113.9';
    expect((await forger.webLogin('student4', 'student-pass')).status).toBe(200);
    expect((await listed(forger)).map((session) => session.address)).toEqual(['127.0.0.4']);
    expect((await listed(watcher)).map((session) => session.address)).toEqual(['10.0.0.5']);
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
    const lms = await proxiedLms();
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
      const first = await proxiedLms({}, path);
      expect((await xqueueLogin(first, 'xqueue_svc', 'xqueue-pass', '10.6.0.1')).status).toBe(200);
      for (const address of ['10.6.0.7', '10.6.0.8', '10.6.0.9']) {
        expect((await xqueueLogin(first, 'xqueue_svc', 'guess', address)).status).toBe(401);
      }
      // Another LMS process on the same file (or this one, restarted).
      const database = openDatabase({ path });
      const second = await listen(
        createApp({
          db: database.db,
          config: first.config,
          logger: pino({ level: 'silent' }),
          now: first.clock.now,
        }),
      );
      try {
        const login = (address: string, password: string) =>
          new TestClient(urlFetcher(second.url)).postForm(
            '/xqueue/login/',
            { username: 'xqueue_svc', password },
            { 'x-forwarded-for': `203.0.113.9, ${address}` },
          );
        expect((await login('10.6.0.1', 'xqueue-pass')).status).toBe(200);
        expect((await login('10.6.0.2', 'xqueue-pass')).status).toBe(429);
        expect((await login('10.6.0.7', 'guess')).status).toBe(429);
      } finally {
        await second.close();
        database.close();
      }
    } finally {
      await server?.close();
      server = undefined;
      await lms?.close();
      lms = undefined;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** 30 wrong passwords for `username` at once, each on a new connection, from `address`. */
async function wrongBurst(fetcher: Fetcher, username: string, address: string) {
  const answers = await Promise.all(
    Array.from({ length: 30 }, () =>
      new TestClient(fetcher).postForm(
        '/xqueue/login/',
        { username, password: 'guess' },
        { 'x-forwarded-for': address },
      ),
    ),
  );
  return answers.map((response) => response.status).sort();
}

const TEN_CHECKED = [...Array<number>(10).fill(401), ...Array<number>(20).fill(429)];

describe('password checks of a parallel burst, counted where they run', () => {
  it('runs LOGIN_THROTTLE_FAILURES checks for 30 wrong passwords, from a new address and from a trusted one', async () => {
    lms = await createTestLms({ config: { loginThrottleFailures: 10, trustProxy: ['127.0.0.1'] } });
    // The real checker, counting each hash it runs.
    let hashes = 0;
    const passwords: PasswordChecker = {
      verify: (password, encoded) => {
        hashes++;
        return verifyPassword(password, encoded);
      },
      burn: (password, iterations) => {
        hashes++;
        return burnPasswordCheck(password, iterations);
      },
      hash: hashPassword,
    };
    const app = createApp({
      db: lms.database.db,
      config: lms.config,
      logger: pino({ level: 'silent' }),
      now: lms.clock.now,
      passwords,
    });
    server = await listen(app);
    const fetcher = urlFetcher(server.url);
    const checked = async (burst: () => Promise<number[]>) => {
      const before = hashes;
      const statuses = await burst();
      return { checks: hashes - before, statuses };
    };
    expect(await checked(() => wrongBurst(fetcher, 'student1', '10.88.0.3'))).toEqual({
      checks: 10,
      statuses: TEN_CHECKED,
    });
    // student3 logs in from 10.88.0.2: that pair is trusted from now on.
    const login = await new TestClient(fetcher).xqueueLogin('student3', 'student-pass', {
      'x-forwarded-for': '10.88.0.2',
    });
    expect(login.status).toBe(200);
    expect(await checked(() => wrongBurst(fetcher, 'student3', '10.88.0.2'))).toEqual({
      checks: 10,
      statuses: TEN_CHECKED,
    });
    // The LMS's own count of checks agrees with the checker's.
    const metrics = await (await fetcher('/metrics', {})).text();
    expect(sumMetric(metrics, 'lms_password_checks_total')).toBe(hashes);
  });
});

/** The workers that logged `listening` (each names its pid there). */
function listeningPids(output: string) {
  const lines = output.split('\n').filter((line) => line.includes('"listening"'));
  return new Set(lines.map((line) => (JSON.parse(line) as { pid: number }).pid));
}

// The password checks are counted by `lms_password_checks_total`, summed over the workers by the
// primary. login.ts bumps it just before it calls the password checker, in the one place that
// calls it, whatever the answer turns out to be (401, 200, or an error); the in-process test
// above shows it equal to a counting checker's count. So it counts checks, not answers.
describe('LMS_WORKERS=4: one budget for the checks of every worker', { timeout: 120_000 }, () => {
  let redis: RedisHandle | undefined;
  beforeAll(async () => {
    redis = await useRedis(process.env.REDIS_URL);
  });
  afterAll(() => redis?.stop());

  it('runs exactly LOGIN_THROTTLE_FAILURES checks for 30 simultaneous wrong passwords spread over 4 workers, new address or trusted', async () => {
    const cluster = await startLms({
      env: {
        PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS),
        LOG_LEVEL: 'info',
        LMS_WORKERS: '4',
        SESSION_STORE: 'redis',
        SESSION_REDIS_URL: redis!.url,
        SESSION_REDIS_PREFIX: `lms-throttle-${randomBytes(6).toString('hex')}:`,
        LOGIN_THROTTLE_FAILURES: '10',
        TRUST_PROXY: 'loopback',
      },
    });
    try {
      // Every worker listens before the bursts; the primary hands new connections to the workers
      // in turn (node:cluster's round-robin), and each request of a burst is a new connection.
      await waitFor(() => (listeningPids(cluster.process.output()).size >= 4 ? true : undefined), {
        timeoutMs: 60_000,
        what: 'four workers listening',
      });
      const fetcher = newConnectionFetcher(cluster.url);
      // Every worker's count, summed by the primary.
      const checks = async () =>
        sumMetric(await (await fetcher('/metrics', {})).text(), 'lms_password_checks_total');
      const checked = async (burst: () => Promise<number[]>) => {
        const before = await checks();
        const statuses = await burst();
        return { checks: (await checks()) - before, statuses };
      };
      expect(await checked(() => wrongBurst(fetcher, 'student1', '10.88.0.3'))).toEqual({
        checks: 10,
        statuses: TEN_CHECKED,
      });
      // student3 logs in from 10.88.0.2: that pair is trusted from now on.
      const login = await new TestClient(fetcher).xqueueLogin('student3', 'student-pass', {
        'x-forwarded-for': '10.88.0.2',
      });
      expect(login.status).toBe(200);
      expect(await checked(() => wrongBurst(fetcher, 'student3', '10.88.0.2'))).toEqual({
        checks: 10,
        statuses: TEN_CHECKED,
      });
    } finally {
      await cluster.stop();
    }
  });
});

import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import {
  LmsStartError,
  type LocalLms,
  type RedisHandle,
  startLms,
  useRedis,
  waitFor,
} from '@storm-lab/harness';
import { decodeSubmission, type PulledSubmission } from '@storm-lab/xqueue-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from './db/client.ts';
import { TestClient, urlFetcher } from './testing/client.ts';

const FAST = { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' };
const QUEUELEN = '/xqueue/get_queuelen/?queue_name=test-queue';
let started: LocalLms[] = [];
let redis: RedisHandle | undefined;
beforeAll(async () => {
  redis = await useRedis(process.env.REDIS_URL);
});
afterAll(() => redis?.stop());

afterEach(async () => {
  await Promise.all(started.map((lms) => lms.stop()));
  started = [];
});

async function start(options: Parameters<typeof startLms>[0] = {}): Promise<LocalLms> {
  const lms = await startLms({ ...options, env: { ...FAST, ...options.env } });
  started.push(lms);
  return lms;
}

async function grader(url: string): Promise<TestClient> {
  const client = new TestClient(urlFetcher(url));
  expect((await client.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
  return client;
}

/** One get_submission of test-queue: the submission, or null when the queue is empty. */
async function pullOnce(client: TestClient): Promise<PulledSubmission | null> {
  const response = await client.get('/xqueue/get_submission/?queue_name=test-queue');
  expect(response.status).toBe(200);
  const body = (await response.json()) as { return_code: number; content: unknown };
  if (body.return_code === 1) return null;
  const pulled = decodeSubmission(body.content);
  if (!pulled.ok) throw new Error(pulled.error);
  return pulled.value;
}

async function drain(client: TestClient): Promise<number[]> {
  const ids: number[] = [];
  for (;;) {
    const body = (await (
      await client.get('/xqueue/get_submission/?queue_name=test-queue')
    ).json()) as {
      return_code: number;
      content: unknown;
    };
    if (body.return_code === 1) return ids;
    const pulled = decodeSubmission(body.content);
    if (!pulled.ok) throw new Error(pulled.error);
    ids.push(pulled.value.header.submission_id);
  }
}

describe('LMS server process', { timeout: 90_000 }, () => {
  it('reproduces the storm over real HTTP, and the group exemption cures it', async () => {
    const [storm, cured] = await Promise.all([
      start(),
      start({ env: { SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue' } }),
    ]);
    for (const lms of [storm, cured]) {
      const first = await grader(lms.url);
      const second = await grader(lms.url);
      expect((await second.get(QUEUELEN)).status).toBe(200);
      const response = await first.get(QUEUELEN);
      if (lms === storm) {
        expect(response.status).toBe(403);
        expect(response.headers.get('x-session-end-reason')).toBe('evicted');
      } else {
        expect(response.status).toBe(200);
      }
    }
  });

  it('never hands one submission to two pullers across two processes sharing the database', async () => {
    const env = { SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue' };
    const first = await start({ env });
    const second = await start({ env, databasePath: first.databasePath });
    const student = new TestClient(urlFetcher(first.url));
    expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
    const body = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
    const created = await Promise.all(
      Array.from({ length: 40 }, () => student.postJson('/api/submissions', body)),
    );
    expect(created.map((response) => response.status)).toEqual(Array(40).fill(201));
    const pullers = await Promise.all([first, second, first, second].map((lms) => grader(lms.url)));
    const pulled = (await Promise.all(pullers.map(drain))).flat();
    expect(pulled).toHaveLength(40);
    expect(new Set(pulled).size).toBe(40);
  });

  // as edx-submissions' XQueueViewSet.get_submission: a timed-out pull is served as it is
  it('serves an expired lock again with the same key from another process, until its result lands', async () => {
    const env = { SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue', XQUEUE_LOCK_SECONDS: '0.3' };
    const first = await start({ env });
    const second = await start({ env, databasePath: first.databasePath });
    const student = new TestClient(urlFetcher(first.url));
    expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
    const body = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
    expect((await student.postJson('/api/submissions', body)).status).toBe(201);
    const [abandoning, taking] = await Promise.all([grader(first.url), grader(second.url)]);
    const abandoned = (await pullOnce(abandoning))!;
    const served = await waitFor(async () => (await pullOnce(taking)) ?? undefined, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the expired lock to be served again',
    });
    expect(served.header).toEqual(abandoned.header);
    expect((await pullOnce(abandoning))?.header).toEqual(abandoned.header);
    const result = JSON.stringify({ correct: true, score: 1, msg: 'ok' });
    const put = await taking.postForm('/xqueue/put_result/', {
      xqueue_header: JSON.stringify(served.header),
      xqueue_body: result,
    });
    expect(await put.json()).toEqual({ return_code: 0, content: '' });
    expect(await pullOnce(abandoning)).toBeNull();
    expect(await pullOnce(taking)).toBeNull();
  });

  it('finishes an in-flight request on SIGTERM, then exits cleanly', async () => {
    const lms = await start();
    const url = new URL('/xqueue/login/', lms.url);
    const form = new URLSearchParams({
      username: 'xqueue_svc',
      password: 'xqueue-pass',
    }).toString();
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request(url, {
        method: 'POST',
        // 100-continue: the server's interim answer proves it is handling this request.
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': form.length,
          expect: '100-continue',
        },
      });
      outgoing.on('continue', () => {
        lms.process.child.kill('SIGTERM');
        outgoing.end(form);
      });
      outgoing.on('response', (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      });
      outgoing.on('error', reject);
    });
    expect(await answered).toEqual({
      status: 200,
      body: '{"return_code":0,"content":"Logged in"}',
    });
    expect(await lms.process.exited).toEqual({ code: 0, signal: null });
  });

  it('shares sessions across two processes through Redis (SESSION_STORE=redis): a login on one evicts a grader on the other', async () => {
    const env = {
      SESSION_STORE: 'redis',
      SESSION_REDIS_URL: redis!.url,
      SESSION_REDIS_PREFIX: `lms-${randomBytes(6).toString('hex')}:`,
    };
    const first = await start({ env });
    const second = await start({ env, databasePath: first.databasePath });
    const evicted = await grader(first.url);
    // The session made on the first process is live on the second: one session cache.
    const sameSession = new TestClient(urlFetcher(second.url));
    for (const [name, value] of evicted.cookies) sameSession.cookies.set(name, value);
    expect((await sameSession.get(QUEUELEN)).status).toBe(200);
    const evicting = await grader(second.url);
    const refused = await evicted.get(QUEUELEN);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      session_end: { reason: 'evicted', quota: { used: 1, max: 1, scope: 'account' } },
    });
    expect((await evicting.get(QUEUELEN)).status).toBe(200);
    expect((await new TestClient(urlFetcher(first.url)).get(QUEUELEN)).status).toBe(403);
    // Nothing of it in the database file's sessions table: the sessions are Redis's.
    const database = openDatabase({ path: first.databasePath });
    try {
      expect(database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({ n: 0 });
    } finally {
      database.close();
    }
  });

  it('refuses to start with SESSION_STORE=redis when Redis cannot be reached, and says which', async () => {
    const failing = startLms({
      env: {
        ...FAST,
        SESSION_STORE: 'redis',
        SESSION_REDIS_URL: 'redis://user:secret@127.0.0.1:1',
      },
    });
    await expect(failing).rejects.toThrow(
      /SESSION_STORE=redis, but Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1 cannot be reached/,
    );
    await expect(failing).rejects.not.toThrow(/secret/);
  });

  it('makes startLms reject with the output when the LMS cannot start', async () => {
    const failing = startLms({ env: { ...FAST, XQUEUE_LOCK_SECONDS: 'soon' } });
    await expect(failing).rejects.toThrow(LmsStartError);
    await expect(failing).rejects.toThrow(/XQUEUE_LOCK_SECONDS="soon" is invalid/);
  });
});

import { type LocalLms, startLms, sumMetric, waitFor } from '@storm-lab/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.ts';
import { counterValue, createTestClient } from './testing/clients.ts';
import { loginStudent, SERVICE_PASSWORD, SERVICE_USERNAME, scrape } from './testing/lab.ts';

const QUEUE = 'xc';
const seed = ['--queues', QUEUE, '--students', '2', '--service-password', SERVICE_PASSWORD];
const lmsEnv = { PASSWORD_HASH_ITERATIONS: '1000', XQUEUE_LOCK_SECONDS: '1' };

describe('XQueueClient against a real LMS enforcing single login', () => {
  let lms: LocalLms;
  beforeAll(async () => {
    lms = await startLms({
      env: lmsEnv,
      seed: [...seed, '--student-password', 'student-test-pass'],
    });
  }, 60_000);
  afterAll(async () => {
    await lms?.stop();
  });

  it('logs in once through the CSRF handshake and reads an empty queue', async () => {
    const metrics = createMetrics('t1');
    const client = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    expect(await client.getSubmission()).toEqual({ kind: 'empty' });
    expect(await client.getSubmission()).toEqual({ kind: 'empty' });
    expect(await counterValue(metrics, 'logins')).toBe(1);
  });

  it('shares one login between concurrent requests of the same client', async () => {
    const metrics = createMetrics('t2');
    const client = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    await Promise.all([client.getSubmission(), client.getSubmission(), client.login()]);
    expect(await counterValue(metrics, 'logins')).toBe(1);
  });

  it('re-logs in once and retries when a sibling login evicted its session', async () => {
    const metrics = createMetrics('t3');
    const first = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    const second = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    expect(await first.login()).toBe(true);
    expect(await second.login()).toBe(true);
    expect(await first.getSubmission()).toEqual({ kind: 'empty' });
    expect(
      await counterValue(metrics, 'authFailures', { endpoint: 'get_submission', status: '403' }),
    ).toBe(1);
    expect(await counterValue(metrics, 'logins')).toBe(3);
    expect(await counterValue(metrics, 'reloginGiveups')).toBe(0);
  });

  it('gives the request up when it fails again after the re-login (once-per-request)', async () => {
    const metrics = createMetrics('t4');
    // A student may log in on the xqueue path but is not in group xqueue: every call is a 403.
    const client = createTestClient({
      serverUrl: lms.url,
      queue: QUEUE,
      metrics,
      username: 'student1',
      password: 'student-test-pass',
    });
    const pulled = await client.getSubmission();
    expect(pulled).toMatchObject({
      kind: 'failed',
      reason: expect.stringMatching(/^gave-up: HTTP 403 again/),
    });
    expect(await counterValue(metrics, 'logins')).toBe(2);
    expect(await counterValue(metrics, 'reloginGiveups', { endpoint: 'get_submission' })).toBe(1);
  });

  it('reports a bad password as a failed login, not an exception', async () => {
    const client = createTestClient({ serverUrl: lms.url, queue: QUEUE, password: 'wrong' });
    expect(await client.login()).toBe(false);
    expect(client.loggedIn).toBe(false);
  });

  it('reads put_result 403 "Incorrect key" as a stale pull, not as a lost session', async () => {
    const metrics = createMetrics('t5');
    const student = await loginStudent(lms.url, 'student2');
    const id = await student.submit(QUEUE, `${QUEUE}-p1`, 'anything');
    const first = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    const pulled = await first.getSubmission();
    if (pulled.kind !== 'submission') throw new Error(`expected a submission, got ${pulled.kind}`);
    const header = (JSON.parse(pulled.content) as { xqueue_header: string }).xqueue_header;
    // The LMS lock is 1 s: the same submission is served again, under a new key.
    const again = await waitFor(
      async () => {
        const next = await first.getSubmission();
        return next.kind === 'submission' ? next : undefined;
      },
      { timeoutMs: 5_000, what: 're-served submission' },
    );
    expect(again.content).not.toBe(pulled.content);
    const result = { correct: true, score: 1, msg: '<p>ok</p>' };
    expect(await first.putResult(header, result)).toMatchObject({
      kind: 'rejected',
      reason: 'stale-key',
      retry: false,
    });
    expect(await counterValue(metrics, 'authFailures')).toBe(0);
    const freshHeader = (JSON.parse(again.content) as { xqueue_header: string }).xqueue_header;
    expect(await first.putResult(freshHeader, result)).toEqual({ kind: 'accepted' });
    expect(await first.putResult(freshHeader, result)).toEqual({ kind: 'accepted' }); // idempotent
    expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true, score: 1 });
  });
});

describe('XQueueClient with instance ids on an instance-scoped LMS', () => {
  let lms: LocalLms;
  beforeAll(async () => {
    lms = await startLms({ env: { ...lmsEnv, SINGLE_LOGIN_SCOPE: 'instance' }, seed });
  }, 60_000);
  afterAll(async () => {
    await lms?.stop();
  });

  it('sends X-Client-Instance on login so siblings keep their sessions', async () => {
    const metrics = createMetrics('t6');
    const clients = ['r-1/xc/0', 'r-1/xc/1'].map((instanceId) =>
      createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics, instanceId }),
    );
    for (const client of clients) expect(await client.login()).toBe(true);
    for (const client of clients) expect(await client.getSubmission()).toEqual({ kind: 'empty' });
    expect(await counterValue(metrics, 'authFailures')).toBe(0);
    const text = await scrape(`${lms.url}/metrics`);
    expect(sumMetric(text, 'lms_sessions_evicted_total', { account: SERVICE_USERNAME })).toBe(0);
  });

  it('sends no instance id by default, as upstream, so siblings still evict each other', async () => {
    const metrics = createMetrics('t7');
    const clients = [0, 1].map(() =>
      createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics }),
    );
    for (const client of clients) expect(await client.login()).toBe(true);
    for (const client of clients) expect(await client.getSubmission()).toEqual({ kind: 'empty' });
    // Each re-login evicts the other client in turn: the storm in miniature.
    expect(await counterValue(metrics, 'authFailures', { endpoint: 'get_submission' })).toBe(2);
  });
});

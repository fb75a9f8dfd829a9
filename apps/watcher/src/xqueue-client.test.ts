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

  it('gives the request up when it fails again after the re-login', async () => {
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
      reason: 'Received 403 after re-authentication',
    });
    // Upstream's `_request` does not log in first: the 403 brings the one login, then gives up.
    expect(await counterValue(metrics, 'logins')).toBe(1);
    expect(await counterValue(metrics, 'reloginGiveups', { endpoint: 'get_submission' })).toBe(1);
  });

  it('reports a bad password as a failed login, not an exception', async () => {
    const client = createTestClient({ serverUrl: lms.url, queue: QUEUE, password: 'wrong' });
    expect(await client.login()).toBe(false);
    expect(client.loggedIn).toBe(false);
  });

  // As xqueue-watcher's XQueueClient._request since a00741d: any 403, whatever its body, is
  // answered with one re-login and one retry; put_result's "Incorrect key" included.
  it('re-logs in once on put_result\'s 403 "Incorrect key", then gives the result up', async () => {
    const metrics = createMetrics('t5');
    const student = await loginStudent(lms.url, 'student2');
    const id = await student.submit(QUEUE, `${QUEUE}-p1`, 'anything');
    const client = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
    const pulled = await client.getSubmission();
    if (pulled.kind !== 'submission') throw new Error(`expected a submission, got ${pulled.kind}`);
    const header = (JSON.parse(pulled.content) as { xqueue_header: string }).xqueue_header;
    const forged = JSON.stringify({ ...JSON.parse(header), submission_key: 'not-the-key' });
    const result = { correct: true, score: 1, msg: '<p>ok</p>' };
    expect(await client.putResult(forged, result)).toMatchObject({
      kind: 'rejected',
      reason: 'stale-key',
      retry: false,
    });
    expect(await counterValue(metrics, 'logins')).toBe(2);
    expect(
      await counterValue(metrics, 'authFailures', { endpoint: 'put_result', status: '403' }),
    ).toBe(2);
    expect(await counterValue(metrics, 'reloginGiveups', { endpoint: 'put_result' })).toBe(1);
    // As edx-submissions' get_submission: after the lock (1 s) the same row, the same key.
    const again = await waitFor(
      async () => {
        const next = await client.getSubmission();
        return next.kind === 'submission' ? next : undefined;
      },
      { timeoutMs: 5_000, what: 're-served submission' },
    );
    expect(again.content).toBe(pulled.content);
    expect(await client.putResult(header, result)).toEqual({ kind: 'accepted' });
    expect(await client.putResult(header, result)).toEqual({ kind: 'accepted' }); // idempotent
    expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true, score: 1 });
  });

  it('hardened: reads the 403 "Incorrect key" as a stale pull, not as a lost session', async () => {
    const metrics = createMetrics('t5h');
    const student = await loginStudent(lms.url, 'student2');
    await student.submit(QUEUE, `${QUEUE}-p1`, 'anything');
    const client = createTestClient({
      serverUrl: lms.url,
      queue: QUEUE,
      metrics,
      mode: 'hardened',
    });
    expect(await client.login()).toBe(true);
    const pulled = await client.getSubmission();
    if (pulled.kind !== 'submission') throw new Error(`expected a submission, got ${pulled.kind}`);
    const header = (JSON.parse(pulled.content) as { xqueue_header: string }).xqueue_header;
    const forged = JSON.stringify({ ...JSON.parse(header), submission_key: 'not-the-key' });
    const result = { correct: false, score: 0, msg: '<p>no</p>' };
    expect(await client.putResult(forged, result)).toMatchObject({ reason: 'stale-key' });
    expect(await counterValue(metrics, 'logins')).toBe(1);
    expect(await counterValue(metrics, 'authFailures')).toBe(0);
    expect(await client.putResult(header, result)).toEqual({ kind: 'accepted' });
  });

  // As xqueue-watcher's XQueueClient._request before a00741d: only 301/302 led to a login, so
  // DRF's 403 was an "unexpected status" and an evicted connection never came back.
  it('legacy: never re-logs in on a 403, so an evicted connection stays stalled', async () => {
    const metrics = createMetrics('t8');
    const evicted = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics, mode: 'legacy' });
    const sibling = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics, mode: 'legacy' });
    expect(await evicted.login()).toBe(true);
    expect(await sibling.login()).toBe(true);
    for (let poll = 0; poll < 3; poll += 1) {
      expect(await evicted.getSubmission()).toMatchObject({
        kind: 'failed',
        reason: expect.stringMatching(/^unexpected status 403/),
      });
    }
    expect(await sibling.getSubmission()).toEqual({ kind: 'empty' });
    expect(await counterValue(metrics, 'logins')).toBe(2);
    expect(await counterValue(metrics, 'authFailures')).toBe(0);
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

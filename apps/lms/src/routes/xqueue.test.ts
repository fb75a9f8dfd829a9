import { parseSubmissionBody } from '@storm-lab/xqueue-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { findSubmission } from '../queue/submissions.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms, TRANSPORTS } from '../testing/fixtures.ts';
import { createGradingSetup, resultFields } from '../testing/flows.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

describe.each(TRANSPORTS)('xqueue login and CSRF over %s', (transport) => {
  it('sets a readable csrftoken cookie on GET /xqueue/login/', async () => {
    lms = await createTestLms({ transport });
    const response = await lms.fetcher('/xqueue/login/', {});
    expect(await response.json()).toEqual({ return_code: 0, content: '' });
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith('csrftoken='));
    expect(cookie).toMatch(/^csrftoken=[A-Za-z0-9]{32}; /);
    expect(cookie).not.toMatch(/HttpOnly/i);
  });

  it('logs in without a CSRF token and sets an HttpOnly, SameSite=Lax session cookie', async () => {
    lms = await createTestLms({ transport });
    const response = await lms.fetcher('/xqueue/login/', {
      method: 'POST',
      body: new URLSearchParams({ username: 'xqueue_svc', password: 'xqueue-pass' }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ return_code: 0, content: 'Logged in' });
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith('sessionid='));
    expect(cookie).toMatch(
      /^sessionid=[A-Za-z0-9_-]{43}; Max-Age=1209600; Path=\/; HttpOnly; SameSite=Lax$/,
    );
  });

  it('marks cookies Secure behind a TLS proxy', async () => {
    lms = await createTestLms({ transport });
    const response = await lms.fetcher('/xqueue/login/', {
      headers: { 'x-forwarded-proto': 'https' },
    });
    expect(response.headers.get('set-cookie')).toMatch(/; Secure/);
  });

  it('answers 400 for missing fields and 401 for bad credentials', async () => {
    lms = await createTestLms({ transport });
    const client = new TestClient(lms.fetcher);
    const missing = await client.postForm('/xqueue/login/', { username: 'xqueue_svc' });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ return_code: 1, content: 'Insufficient login info' });
    expect(
      (await client.postForm('/xqueue/login/', { username: 'xqueue_svc', password: 'nope' }))
        .status,
    ).toBe(401);
  });

  it('requires X-CSRFToken equal to the cookie on unsafe methods of a logged-in session', async () => {
    lms = await createTestLms({ transport });
    const grader = new TestClient(lms.fetcher);
    await grader.xqueueLogin('xqueue_svc', 'xqueue-pass');
    const token = grader.headers['X-CSRFToken']!;
    delete grader.headers['X-CSRFToken'];
    const missing = await grader.postForm('/xqueue/put_result/', {});
    expect(missing.status).toBe(403);
    expect(await missing.json()).toEqual({ detail: 'CSRF Failed: CSRF token missing.' });
    const wrong = await grader.postForm(
      '/xqueue/put_result/',
      {},
      { 'X-CSRFToken': 'x'.repeat(32) },
    );
    expect(await wrong.json()).toEqual({ detail: 'CSRF Failed: CSRF token incorrect.' });
    grader.cookies.delete('csrftoken');
    const noCookie = await grader.postForm('/xqueue/logout/', {}, { 'X-CSRFToken': token });
    expect(await noCookie.json()).toEqual({ detail: 'CSRF Failed: CSRF cookie not set.' });
    expect((await grader.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(200);
  });

  it('asks a logged-in client that logs in again for the token, and replaces its session', async () => {
    lms = await createTestLms({ transport });
    const grader = new TestClient(lms.fetcher);
    await grader.xqueueLogin('xqueue_svc', 'xqueue-pass');
    const fields = { username: 'xqueue_svc', password: 'xqueue-pass' };
    const noToken = await grader.postForm('/xqueue/login/', fields, { 'X-CSRFToken': '' });
    expect(noToken.status).toBe(403);
    expect((await grader.postForm('/xqueue/login/', fields)).status).toBe(200);
    expect((await grader.get('/xqueue/get_queuelen/?queue_name=test-queue')).status).toBe(200);
    expect(lms.database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({
      n: 1,
    });
  });

  it('lets only members of group xqueue use the queue endpoints', async () => {
    lms = await createTestLms({ transport });
    const student = new TestClient(lms.fetcher);
    expect((await student.xqueueLogin('student1', 'student-pass')).status).toBe(200);
    const response = await student.get('/xqueue/get_submission/?queue_name=test-queue');
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({
      detail: 'You do not have permission to perform this action.',
    });
  });

  it.each([
    '/xqueue/get_queuelen/?queue_name=test-queue',
    '/xqueue/get_submission/?queue_name=test-queue',
  ])('answers DRF 403 to an anonymous %s', async (path) => {
    lms = await createTestLms({ transport });
    const response = await lms.fetcher(path, {});
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({
      detail: 'Authentication credentials were not provided.',
    });
    expect(response.headers.get('X-Session-End-Reason')).toBeNull();
  });
});

describe.each(TRANSPORTS)('xqueue queue endpoints over %s', (transport) => {
  it('serves the oldest submission with a nested-JSON header and body, then reports empty', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    const [id] = await setup.submit(1);
    expect(
      await (await setup.grader.get('/xqueue/get_queuelen/?queue_name=test-queue')).json(),
    ).toEqual({ return_code: 0, content: 1 });
    const pulled = await setup.pull();
    expect(pulled?.header).toEqual({
      submission_id: id,
      submission_key: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect(pulled?.body.student_response).toBe('answer 0');
    expect(JSON.parse(pulled!.body.grader_payload)).toEqual({ answer: 'answer-test-queue-p1' });
    expect(JSON.parse(pulled!.body.student_info)).toEqual({
      anonymous_student_id: expect.stringMatching(/^[0-9a-f]{32}$/),
      submission_time: '20250101000000',
    });
    expect(parseSubmissionBody(JSON.stringify(pulled!.body)).ok).toBe(true);
    const empty = await setup.grader.get('/xqueue/get_submission/?queue_name=test-queue');
    expect(await empty.json()).toEqual({ return_code: 1, content: "Queue 'test-queue' is empty" });
  });

  it.each(['get_submission', 'get_queuelen'])(
    'answers an unknown queue on %s with the envelope',
    async (endpoint) => {
      const setup = await createGradingSetup({ transport });
      lms = setup.lms;
      const response = await setup.grader.get(`/xqueue/${endpoint}/?queue_name=nope`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ return_code: 1, content: "Queue 'nope' not found" });
      const missing = await setup.grader.get(`/xqueue/${endpoint}/`);
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({
        return_code: 1,
        content: `'${endpoint}' must provide parameter 'queue_name'`,
      });
    },
  );

  it('never hands one submission to two parallel pullers', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    await setup.submit(10);
    const pulls = await Promise.all(Array.from({ length: 25 }, () => setup.pull()));
    const ids = pulls.flatMap((pulled) => (pulled ? [pulled.header.submission_id] : []));
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
  });

  it('serves a submission again with a new key once its lock expires, and refuses the old key', async () => {
    const setup = await createGradingSetup({ transport, config: { xqueueLockSeconds: 0.5 } });
    lms = setup.lms;
    await setup.submit(1);
    const first = (await setup.pull())!;
    setup.lms.clock.advance(499);
    expect(await setup.pull()).toBeNull();
    setup.lms.clock.advance(1);
    const second = (await setup.pull())!;
    expect(second.header.submission_id).toBe(first.header.submission_id);
    expect(second.header.submission_key).not.toBe(first.header.submission_key);
    const stale = await setup.putResult(resultFields(first));
    expect(stale.status).toBe(403);
    expect(await stale.json()).toEqual({ return_code: 1, content: 'Incorrect key for submission' });
    expect(findSubmission(setup.lms.database.db, first.header.submission_id)).toMatchObject({
      state: 'pulled',
      failureCount: 1,
      pullCount: 2,
      result: null,
    });
    expect((await setup.putResult(resultFields(second))).status).toBe(200);
  });

  it('marks a submission failed after XQUEUE_MAX_FAILURES expired locks and stops serving it', async () => {
    const setup = await createGradingSetup({
      config: { xqueueLockSeconds: 1, xqueueMaxFailures: 2 },
    });
    lms = setup.lms;
    const [id] = await setup.submit(1);
    expect(await setup.pull()).not.toBeNull();
    setup.lms.clock.advance(1000);
    expect(await setup.pull()).not.toBeNull();
    setup.lms.clock.advance(1000);
    expect(await setup.pull()).toBeNull();
    expect(findSubmission(setup.lms.database.db, id!)).toMatchObject({
      state: 'failed',
      failureCount: 2,
    });
  });
});

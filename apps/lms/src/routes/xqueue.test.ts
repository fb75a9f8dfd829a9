import { decodeSubmission } from '@storm-lab/xqueue-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { findSubmission } from '../queue/submissions.ts';
import { TestClient } from '../testing/client.ts';
import { createTestLms, listen, type TestLms, TRANSPORTS } from '../testing/fixtures.ts';
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
    // Only a peer that is a TRUST_PROXY proxy (here loopback) is believed: a real socket.
    lms = await createTestLms({ transport: 'socket', config: { trustProxy: ['loopback'] } });
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

const SUBMISSIONS = '/xqueue/get_submission/?queue_name=test-queue';

function rowOf(lms: TestLms, id: number) {
  return findSubmission(lms.database.db, id);
}

describe.each(TRANSPORTS)('xqueue queue endpoints over %s', (transport) => {
  // as edx-submissions' XQueueViewSet.get_submission
  it('serves the oldest submission in upstream shapes (header, body, files), then reports empty', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    const [id] = await setup.submit(1);
    expect(
      await (await setup.grader.get('/xqueue/get_queuelen/?queue_name=test-queue')).json(),
    ).toEqual({ return_code: 0, content: 1 });
    const envelope = (await (await setup.grader.get(SUBMISSIONS)).json()) as {
      return_code: number;
      content: string;
    };
    expect(envelope.return_code).toBe(0);
    const content = JSON.parse(envelope.content) as Record<string, string>;
    expect(Object.keys(content)).toEqual(['xqueue_header', 'xqueue_body', 'xqueue_files']);
    const header = JSON.parse(content.xqueue_header!);
    expect(Object.keys(header)).toEqual(['submission_id', 'submission_key']);
    expect(header).toEqual({
      submission_id: id,
      submission_key: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    const body = JSON.parse(content.xqueue_body!);
    expect(Object.keys(body)).toEqual(['grader_payload', 'student_info', 'student_response']);
    // The problem's grader payload string, verbatim.
    expect(body.grader_payload).toBe('{"answer":"answer-test-queue-p1"}');
    expect(body.student_response).toBe('answer 0');
    expect(body.student_info).toEqual(expect.any(String));
    expect(JSON.parse(body.student_info)).toEqual({
      anonymous_student_id: expect.stringMatching(/^[0-9a-f]{32}$/),
      submission_time: String(Date.UTC(2025, 0, 1) / 1000),
      random_seed: 1,
    });
    expect(content.xqueue_files).toBe('{}');
    const empty = await setup.grader.get(SUBMISSIONS);
    expect(empty.status).toBe(200);
    expect(await empty.json()).toEqual({ return_code: 1, content: "Queue 'test-queue' is empty" });
  });

  // as edx-submissions' XQueueViewSet.get_submission: it filters rows by name, so any name
  // without a servable row, known or not, is "empty"; the last queue_name counts (QueryDict.get).
  it('answers 200 "is empty" for any queue name with nothing to serve, known or not', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    for (const name of ['test-queue', 'nope', 'q'.repeat(300)]) {
      const response = await setup.grader.get(`/xqueue/get_submission/?queue_name=${name}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        return_code: 1,
        content: `Queue '${name}' is empty`,
      });
    }
    const [id] = await setup.submit(1);
    const last = await setup.grader.get(
      '/xqueue/get_submission/?queue_name=nope&queue_name=test-queue',
    );
    const served = (await last.json()) as { return_code: number; content: string };
    expect(JSON.parse(JSON.parse(served.content).xqueue_header).submission_id).toBe(id);
    for (const query of ['', '?queue_name=']) {
      const missing = await setup.grader.get(`/xqueue/get_submission/${query}`);
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({
        return_code: 1,
        content: "'get_submission' must provide parameter 'queue_name'",
      });
    }
  });

  it('answers get_queuelen (not upstream: the standalone xqueue\'s) for an unknown queue with "not found"', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    const response = await setup.grader.get('/xqueue/get_queuelen/?queue_name=nope');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ return_code: 1, content: "Queue 'nope' not found" });
    const missing = await setup.grader.get('/xqueue/get_queuelen/');
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({
      return_code: 1,
      content: "'get_queuelen' must provide parameter 'queue_name'",
    });
  });

  it('never hands one submission to two parallel pullers', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    await setup.submit(10);
    const pulls = await Promise.all(Array.from({ length: 25 }, () => setup.pull()));
    const ids = pulls.flatMap((pulled) => (pulled ? [pulled.header.submission_id] : []));
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
  });

  // as edx-submissions' XQueueViewSet.get_submission: a timed-out pulled row is served as it is
  // (no update_status), so its key and status_time stay until a result lands.
  it('serves an expired lock again with the same key and pull time on every poll until a result lands', async () => {
    const setup = await createGradingSetup({ transport, config: { xqueueLockSeconds: 0.5 } });
    lms = setup.lms;
    const [id] = await setup.submit(1);
    const pulledAt = setup.lms.clock.now();
    const first = (await setup.pull())!;
    setup.lms.clock.advance(500);
    // status_time__lt: a lock exactly as old as the lock time still holds.
    expect(await setup.pull()).toBeNull();
    setup.lms.clock.advance(1);
    for (let poll = 0; poll < 3; poll++) expect((await setup.pull())?.header).toEqual(first.header);
    expect(rowOf(setup.lms, id!)).toMatchObject({
      state: 'pulled',
      pullKey: first.header.submission_key,
      pulledAt,
      statusAt: pulledAt,
      pullCount: 4,
      failureCount: 3,
      result: null,
    });
    const response = await setup.putResult(resultFields(first));
    expect(await response.json()).toEqual({ return_code: 0, content: '' });
    expect(await setup.pull()).toBeNull();
    expect(rowOf(setup.lms, id!)).toMatchObject({ state: 'graded', resultPosts: 1 });
  });

  // as edx-submissions' XQueueViewSet.get_submission: order_by("status_time")
  it('serves by status time: creation for a pending submission, pull time for an expired lock', async () => {
    const setup = await createGradingSetup({ transport, config: { xqueueLockSeconds: 1 } });
    lms = setup.lms;
    const [a, b] = await setup.submit(2);
    const pulledA = (await setup.pull())!;
    expect(pulledA.header.submission_id).toBe(a);
    setup.lms.clock.advance(1001);
    const [c] = await setup.submit(1);
    // b was created before a was pulled; c after.
    expect((await setup.pull())?.header.submission_id).toBe(b);
    expect((await setup.pull())?.header).toEqual(pulledA.header);
    expect((await setup.pull())?.header).toEqual(pulledA.header);
    expect((await setup.putResult(resultFields(pulledA))).status).toBe(200);
    expect((await setup.pull())?.header.submission_id).toBe(c);
  });

  // Not upstream: XQUEUE_MAX_FAILURES counts every serve of an expired lock.
  it('marks a submission failed after XQUEUE_MAX_FAILURES serves of an expired lock and stops serving it', async () => {
    const setup = await createGradingSetup({
      transport,
      config: { xqueueLockSeconds: 1, xqueueMaxFailures: 2 },
    });
    lms = setup.lms;
    const [id] = await setup.submit(1);
    const first = (await setup.pull())!;
    setup.lms.clock.advance(1001);
    expect((await setup.pull())?.header).toEqual(first.header);
    expect(await setup.pull()).toBeNull();
    expect(rowOf(setup.lms, id!)).toMatchObject({ state: 'failed', failureCount: 2 });
  });

  // as edx-submissions' XQueueViewSet.status (IsXQueueUser); upstream's body is not JSON, ours is.
  it('answers POST /xqueue/status/ with the envelope "OK", for group xqueue only', async () => {
    const setup = await createGradingSetup({ transport });
    lms = setup.lms;
    const ok = await setup.grader.postForm('/xqueue/status/', {});
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ return_code: 0, content: 'OK' });
    const anonymous = await setup.lms.fetcher('/xqueue/status/', { method: 'POST' });
    expect(anonymous.status).toBe(403);
    expect(await anonymous.json()).toEqual({
      detail: 'Authentication credentials were not provided.',
    });
    const student = new TestClient(setup.lms.fetcher);
    await student.xqueueLogin('student1', 'student-pass');
    const denied = await student.postForm('/xqueue/status/', {});
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({
      detail: 'You do not have permission to perform this action.',
    });
  });
});

/**
 * xqueue-watcher's `_login` and `_request` (client.py) over a real socket: a cookie jar, GET the
 * login URL, POST the form with `X-CSRFToken` and `Referer: <login URL>`, then the token read
 * again from the jar and `Referer: <server URL>` on every later request. Node's fetch, like
 * requests, sends no Origin.
 */
function realWatcher(server: string) {
  const jar = new Map<string, string>();
  const headers: Record<string, string> = {};
  const send = async (path: string, init: RequestInit = {}) => {
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const sent = { ...headers, ...(init.headers as Record<string, string>), cookie };
    const response = await fetch(`${server}${path}`, { ...init, headers: sent });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return response;
  };
  return {
    jar,
    headers,
    send,
    async login(username: string, password: string) {
      const url = `${server}/xqueue/login/`;
      await (await send('/xqueue/login/')).text();
      const response = await send('/xqueue/login/', {
        method: 'POST',
        body: new URLSearchParams({ username, password }),
        headers: { 'X-CSRFToken': jar.get('csrftoken') ?? '', Referer: url },
      });
      headers['X-CSRFToken'] = jar.get('csrftoken') ?? '';
      headers.Referer = server;
      return response;
    },
  };
}

describe('the real xqueue-watcher handshake over real HTTP', () => {
  it('logs in, re-reads the rotated csrftoken and grades, exactly as client.py does', async () => {
    lms = await createTestLms();
    const student = new TestClient(lms.fetcher);
    await student.webLogin('student1', 'student-pass');
    const submission = {
      queue_name: 'test-queue',
      problem_id: 'test-queue-p1',
      student_response: 'x',
    };
    expect((await student.postJson('/api/submissions', submission)).status).toBe(201);
    const server = await listen(lms.app);
    try {
      const watcher = realWatcher(server.url);
      await (await watcher.send('/xqueue/login/')).text();
      const first = watcher.jar.get('csrftoken');
      const login = await watcher.login('xqueue_svc', 'xqueue-pass');
      expect([login.status, await login.json()]).toEqual([
        200,
        { return_code: 0, content: 'Logged in' },
      ]);
      expect(watcher.headers['X-CSRFToken']).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(watcher.headers['X-CSRFToken']).not.toBe(first);
      const pulled = await watcher.send(SUBMISSIONS);
      const envelope = (await pulled.json()) as { return_code: number; content: unknown };
      expect(envelope.return_code).toBe(0);
      const decoded = decodeSubmission(envelope.content);
      if (!decoded.ok) throw new Error(decoded.error);
      const fields = new URLSearchParams(resultFields(decoded.value));
      const stale = await watcher.send('/xqueue/put_result/', {
        method: 'POST',
        body: fields,
        headers: { 'X-CSRFToken': first ?? '' },
      });
      expect([stale.status, await stale.json()]).toEqual([
        403,
        { detail: 'CSRF Failed: CSRF token incorrect.' },
      ]);
      const put = await watcher.send('/xqueue/put_result/', { method: 'POST', body: fields });
      expect([put.status, await put.json()]).toEqual([200, { return_code: 0, content: '' }]);
      expect(rowOf(lms, decoded.value.header.submission_id)?.state).toBe('graded');
    } finally {
      await server.close();
    }
  });

  it('refuses the same login from a page on another site, in the envelope', async () => {
    lms = await createTestLms();
    const server = await listen(lms.app);
    try {
      const response = await fetch(`${server.url}/xqueue/login/`, {
        method: 'POST',
        body: new URLSearchParams({ username: 'xqueue_svc', password: 'xqueue-pass' }),
        headers: { Origin: 'https://evil.example' },
      });
      expect([response.status, await response.json()]).toEqual([
        403,
        {
          return_code: 1,
          content:
            'CSRF Failed: Origin checking failed - https://evil.example does not match any trusted origins.',
        },
      ]);
      expect(response.headers.getSetCookie()).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

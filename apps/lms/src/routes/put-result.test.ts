import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PulledSubmission } from '@storm-lab/xqueue-protocol';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { findSubmission } from '../queue/submissions.ts';
import { type TestLms, TRANSPORTS } from '../testing/fixtures.ts';
import { createGradingSetup, type GradingSetup, resultFields } from '../testing/flows.ts';

let lms: TestLms | undefined;
let tempDir: string | undefined;
afterEach(async () => {
  await lms?.close();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
});

function submissionsOf(lms: TestLms) {
  return lms.database.sqlite.prepare('SELECT * FROM submissions ORDER BY id').all();
}

/** put_result fields with any body and header overrides, as a grader might send them. */
function replyFields(
  pulled: Pick<PulledSubmission, 'header'>,
  body: unknown,
  header: Record<string, unknown> = {},
): Record<string, string> {
  return {
    xqueue_header: JSON.stringify({ ...pulled.header, ...header }),
    xqueue_body: JSON.stringify(body),
  };
}

const INCORRECT_FORMAT = { return_code: 1, content: 'Incorrect reply format' };

async function expectUnchanged(setup: GradingSetup, send: () => Promise<Response>, status: number) {
  const before = submissionsOf(setup.lms);
  const response = await send();
  expect(response.status).toBe(status);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body.content ?? body.detail).toEqual(expect.any(String));
  expect(submissionsOf(setup.lms)).toEqual(before);
  return body;
}

describe.each(TRANSPORTS)('put_result over %s', (transport) => {
  async function pulledSetup(options: Parameters<typeof createGradingSetup>[0] = {}) {
    const setup = await createGradingSetup({ ...options, transport });
    lms = setup.lms;
    await setup.submit(1);
    const pulled = (await setup.pull())!;
    return { ...setup, pulled };
  }

  // as edx-submissions' XQueueViewSet.put_result
  it('grades the submission once and shows the result to the student', async () => {
    const setup = await pulledSetup();
    setup.lms.clock.advance(2500);
    const response = await setup.putResult(
      resultFields(setup.pulled, { correct: true, score: 0.75, msg: '<p>ok</p>' }),
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ return_code: 0, content: '' });
    const view = await (
      await setup.student.get(`/api/submissions/${setup.pulled.header.submission_id}`)
    ).json();
    expect(view).toMatchObject({
      state: 'graded',
      correct: true,
      score: 0.75,
      msg: '<p>ok</p>',
      grading_latency_seconds: 2.501,
    });
    const metrics = await (await setup.grader.get('/metrics')).text();
    expect(metrics).toContain('lms_submissions_graded_total{queue="test-queue"} 1');
    expect(metrics).toContain('lms_grading_latency_seconds_bucket{le="5"} 1');
  });

  // Not upstream: edx-submissions' put_result would fail on a retired submission; we answer 200.
  it('accepts a repeat of the accepted result as a no-op', async () => {
    const setup = await pulledSetup();
    const fields = resultFields(setup.pulled);
    expect((await setup.putResult(fields)).status).toBe(200);
    const again = resultFields(setup.pulled, { correct: false, score: 0, msg: 'changed my mind' });
    const body = await expectUnchanged(setup, () => setup.putResult(again), 200);
    expect(body).toEqual({ return_code: 0, content: '' });
    expect(submissionsOf(setup.lms)).toMatchObject([{ state: 'graded', result_posts: 1 }]);
  });

  // as edx-submissions' XQueueViewSet.put_result: no row is 404, a key other than the pull
  // key (or a never-pulled submission's null key) is 403.
  it('answers 404 for an unknown submission and 403 for a never-pulled one', async () => {
    const setup = await pulledSetup();
    const [pending] = await setup.submit(1);
    const unknown = {
      header: { submission_id: 999, submission_key: setup.pulled.header.submission_key },
    };
    expect(await expectUnchanged(setup, () => setup.putResult(resultFields(unknown)), 404)).toEqual(
      { return_code: 1, content: 'Submission does not exist' },
    );
    const neverPulled = { header: { submission_id: pending!, submission_key: 'a'.repeat(32) } };
    expect(
      await expectUnchanged(setup, () => setup.putResult(resultFields(neverPulled)), 403),
    ).toEqual({ return_code: 1, content: 'Incorrect key for submission' });
  });

  // as edx-submissions' XQueueViewSet.put_result: the key is compared as sent, so one that is
  // not a string matches nothing; an id no row can have is "does not exist".
  it('answers 403 to a key that is not a string and 404 to an id no submission can have', async () => {
    const setup = await pulledSetup();
    for (const key of [123, null, [setup.pulled.header.submission_key]]) {
      const fields = replyFields(setup.pulled, { score: 1 }, { submission_key: key });
      expect(await expectUnchanged(setup, () => setup.putResult(fields), 403)).toEqual({
        return_code: 1,
        content: 'Incorrect key for submission',
      });
    }
    for (const id of [0, -1, 2 ** 60, '99999999999999999999']) {
      const fields = replyFields(setup.pulled, { score: 1 }, { submission_id: id });
      expect(await expectUnchanged(setup, () => setup.putResult(fields), 404)).toEqual({
        return_code: 1,
        content: 'Submission does not exist',
      });
    }
  });

  // as edx-submissions' XQueueViewSet.put_result, whose nowait row lock fails the same way
  it('answers 409 when another process holds the database write lock', async () => {
    tempDir = mkdtempSync(join(tmpdir(), 'lms-409-'));
    const setup = await pulledSetup({ path: join(tempDir, 'lms.db'), busyTimeoutMs: 50 });
    const other = new Database(join(tempDir, 'lms.db'));
    other.exec('BEGIN IMMEDIATE');
    const response = await setup.putResult(resultFields(setup.pulled));
    other.exec('ROLLBACK');
    other.close();
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({
      return_code: 1,
      content: 'Submission is currently being processed',
    });
    expect((await setup.putResult(resultFields(setup.pulled))).status).toBe(200);
  });

  // as edx-submissions' XQueueViewSet.validate_grader_reply: one fixed text, the reason logged
  it('refuses what upstream cannot read with 400 "Incorrect reply format", logs why, changes nothing', async () => {
    const setup = await pulledSetup();
    const { submission_id: id, submission_key: key } = setup.pulled.header;
    const header = JSON.stringify({ submission_id: id, submission_key: key });
    const body = JSON.stringify({ correct: true, score: 1, msg: 'ok' });
    const cases: Record<string, string>[] = [
      { xqueue_body: body },
      { xqueue_header: header },
      { xqueue_header: '{not json', xqueue_body: body },
      { xqueue_header: '[1,2]', xqueue_body: body },
      { xqueue_header: JSON.stringify({ submission_id: id }), xqueue_body: body },
      { xqueue_header: JSON.stringify({ submission_key: key }), xqueue_body: body },
      ...['abc', '1.5', '', 1.5, true, null].map((bad) => ({
        xqueue_header: JSON.stringify({ submission_id: bad, submission_key: key }),
        xqueue_body: body,
      })),
      ...['nope', '[1]', '5', 'null', '"text"'].map((bad) => ({
        xqueue_header: header,
        xqueue_body: bad,
      })),
    ];
    for (const fields of cases) {
      const response = await expectUnchanged(setup, () => setup.putResult(fields), 400);
      expect(response).toEqual(INCORRECT_FORMAT);
    }
    const logged = setup.lms.logs.filter(
      (line) => line.msg === 'put_result: incorrect reply format',
    );
    expect(logged).toHaveLength(cases.length);
    expect(logged.map((line) => line.reason)).toContain('xqueue_header has no submission_key');
  });

  // as edx-submissions' XQueueViewSet.validate_grader_reply: int() of the id, only `score` read
  it('grades what upstream accepts: an id as a string of digits, a body with only a score', async () => {
    const setup = await pulledSetup();
    await setup.submit(2);
    const [second, third] = [(await setup.pull())!, (await setup.pull())!];
    const sent: [PulledSubmission, Record<string, string>][] = [
      [setup.pulled, replyFields(setup.pulled, { score: 1 })],
      [
        second,
        replyFields(
          second,
          { score: '0.5', correct: 'yes', msg: 5, extra: [1] },
          { submission_id: ` ${second.header.submission_id} ` },
        ),
      ],
      [
        third,
        replyFields(
          third,
          { correct: false, score: 0, msg: 'm'.repeat(100_001) },
          { submission_id: `+${third.header.submission_id}`, lms_callback_url: 'x', other: 1 },
        ),
      ],
    ];
    for (const [pulled, fields] of sent) {
      const response = await setup.putResult(fields);
      expect(await response.json()).toEqual({ return_code: 0, content: '' });
      expect(response.status).toBe(200);
      expect(findSubmission(setup.lms.database.db, pulled.header.submission_id)?.state).toBe(
        'graded',
      );
    }
    const view = async (pulled: PulledSubmission) =>
      (await setup.student.get(`/api/submissions/${pulled.header.submission_id}`)).json();
    const first = await view(setup.pulled);
    expect(first).toMatchObject({ state: 'graded', score: 1 });
    expect(first).not.toHaveProperty('correct');
    expect(first).not.toHaveProperty('msg');
    const fractional = await view(second);
    expect(fractional).toMatchObject({ state: 'graded', score: 0.5 });
    expect(fractional).not.toHaveProperty('correct');
    expect(await view(third)).toMatchObject({ correct: false, score: 0, msg: 'm'.repeat(100_001) });
  });

  // as edx-submissions' XQueueViewSet.put_result: set_score fails without a usable score, the
  // reply is still a success, the submission goes to `retry` (pulled again with a new key), and
  // fails at MAX_SCORE_UPDATE_RETRIES (5).
  it('sends a result without a usable score back to the queue with a new key, and fails it at the fifth', async () => {
    const setup = await pulledSetup();
    const id = setup.pulled.header.submission_id;
    const unusable = [{ correct: true, msg: 'no score' }, { score: -1 }, { score: 'high' }];
    let pulled = setup.pulled;
    for (const [index, body] of [...unusable, { score: null }, { score: true }].entries()) {
      setup.lms.clock.advance(10);
      const response = await setup.putResult(replyFields(pulled, body));
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ return_code: 0, content: '' });
      if (index === 4) break;
      expect(findSubmission(setup.lms.database.db, id)).toMatchObject({
        state: 'retry',
        scoreFailures: index + 1,
        statusAt: setup.lms.clock.now(),
        result: null,
      });
      const next = (await setup.pull())!;
      expect(next.header.submission_id).toBe(id);
      expect(next.header.submission_key).not.toBe(pulled.header.submission_key);
      const stale = await setup.putResult(resultFields(pulled));
      expect(stale.status).toBe(403);
      expect(await stale.json()).toEqual({
        return_code: 1,
        content: 'Incorrect key for submission',
      });
      pulled = next;
    }
    expect(findSubmission(setup.lms.database.db, id)).toMatchObject({
      state: 'failed',
      scoreFailures: 5,
      result: null,
    });
    expect(await setup.pull()).toBeNull();
    const view = await (await setup.student.get(`/api/submissions/${id}`)).json();
    expect(view).toMatchObject({ state: 'failed' });
  });

  // as edx-submissions' XQueueViewSet.get_submission: a retry's status_time is the time of the
  // failed result, so submissions pending since before it go first.
  it('serves a retried submission after those that were pending before its result', async () => {
    const setup = await pulledSetup();
    const [waiting] = await setup.submit(1);
    const response = await setup.putResult(replyFields(setup.pulled, { msg: 'no score' }));
    expect(response.status).toBe(200);
    const [later] = await setup.submit(1);
    const order = [(await setup.pull())!, (await setup.pull())!, (await setup.pull())!];
    expect(order.map((pulled) => pulled.header.submission_id)).toEqual([
      waiting,
      setup.pulled.header.submission_id,
      later,
    ]);
  });

  it('rejects non-form bodies, wrong JSON types and oversized bodies without a 500', async () => {
    const setup = await pulledSetup({ config: { maxBodyBytes: 4096 } });
    const post = (body: RequestInit['body'], type?: string) => () =>
      setup.grader.request('/xqueue/put_result/', {
        method: 'POST',
        body,
        headers: type ? { 'content-type': type } : {},
      });
    await expectUnchanged(setup, post('{"xqueue_header":', 'application/json'), 400);
    await expectUnchanged(setup, post('[]', 'application/json'), 400);
    await expectUnchanged(
      setup,
      post('{"xqueue_header": 5, "xqueue_body": {}}', 'application/json'),
      400,
    );
    await expectUnchanged(setup, post('hello', 'text/plain'), 400);
    const form = new FormData();
    form.set('xqueue_header', new Blob(['{}']), 'header.json');
    form.set('xqueue_body', 'x');
    await expectUnchanged(setup, post(form), 400);
    await expectUnchanged(
      setup,
      post(new URLSearchParams({ xqueue_body: 'x'.repeat(10_000) })),
      413,
    );
  });

  it('accepts the result as JSON as well as a form', async () => {
    const setup = await pulledSetup();
    const response = await setup.grader.postJson('/xqueue/put_result/', resultFields(setup.pulled));
    expect(response.status).toBe(200);
  });
});

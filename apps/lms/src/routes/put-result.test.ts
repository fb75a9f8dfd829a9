import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
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

  it('accepts a repeat of the accepted result as a no-op', async () => {
    const setup = await pulledSetup();
    const fields = resultFields(setup.pulled);
    expect((await setup.putResult(fields)).status).toBe(200);
    const again = resultFields(setup.pulled, { correct: false, score: 0, msg: 'changed my mind' });
    const body = await expectUnchanged(setup, () => setup.putResult(again), 200);
    expect(body).toEqual({ return_code: 0, content: '' });
    expect(submissionsOf(setup.lms)).toMatchObject([{ state: 'graded', result_posts: 1 }]);
  });

  it('answers 404 for an unknown submission and 403 for a never-pulled one', async () => {
    const setup = await pulledSetup();
    const [pending] = await setup.submit(1);
    const unknown = {
      header: { submission_id: 999, submission_key: setup.pulled.header.submission_key },
    };
    expect(await expectUnchanged(setup, () => setup.putResult(resultFields(unknown)), 404)).toEqual(
      {
        return_code: 1,
        content: 'Submission 999 not found',
      },
    );
    const neverPulled = { header: { submission_id: pending!, submission_key: 'a'.repeat(32) } };
    await expectUnchanged(setup, () => setup.putResult(resultFields(neverPulled)), 403);
  });

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
      content: 'Concurrent update, try again',
    });
    expect((await setup.putResult(resultFields(setup.pulled))).status).toBe(200);
  });

  it('rejects malformed input with the envelope and changes nothing', async () => {
    const setup = await pulledSetup();
    const { submission_id: id, submission_key: key } = setup.pulled.header;
    const header = JSON.stringify({ submission_id: id, submission_key: key });
    const body = JSON.stringify({ correct: true, score: 1, msg: 'ok' });
    const cases: Record<string, string>[] = [
      { xqueue_body: body },
      { xqueue_header: header },
      { xqueue_header: '{not json', xqueue_body: body },
      { xqueue_header: '[1,2]', xqueue_body: body },
      {
        xqueue_header: JSON.stringify({ submission_id: String(id), submission_key: key }),
        xqueue_body: body,
      },
      {
        xqueue_header: JSON.stringify({ submission_id: -1, submission_key: key }),
        xqueue_body: body,
      },
      {
        xqueue_header: JSON.stringify({ submission_id: id, submission_key: 'k'.repeat(200) }),
        xqueue_body: body,
      },
      { xqueue_header: header, xqueue_body: 'nope' },
      { xqueue_header: header, xqueue_body: JSON.stringify({ correct: 'yes', score: 1, msg: '' }) },
      { xqueue_header: header, xqueue_body: JSON.stringify({ correct: true, score: -1, msg: '' }) },
      {
        xqueue_header: header,
        xqueue_body: JSON.stringify({ correct: true, score: 1, msg: 'm'.repeat(100_001) }),
      },
    ];
    for (const fields of cases) {
      const response = await expectUnchanged(setup, () => setup.putResult(fields), 400);
      expect(response).toMatchObject({ return_code: 1 });
    }
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

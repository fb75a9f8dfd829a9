import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';
import { createGradingSetup } from '../testing/flows.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

const METRIC_NAMES = [
  'lms_logins_total',
  'lms_login_failures_total',
  'lms_sessions_evicted_total',
  'lms_storm_alerts_total',
  'lms_http_responses_total',
  'lms_queue_length',
  'lms_submissions_created_total',
  'lms_submissions_graded_total',
  'lms_grading_latency_seconds',
];

function snapshot(lms: TestLms) {
  const all = (table: string) => lms.database.sqlite.prepare(`SELECT * FROM ${table}`).all();
  return { submissions: all('submissions'), sessions: all('sessions'), profiles: all('profiles') };
}

describe('operations endpoints', () => {
  it('exposes every metric the storm runner reads, in Prometheus text format', async () => {
    lms = await createTestLms();
    const response = await lms.app.request('/metrics');
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const name of METRIC_NAMES) expect(text).toContain(`# TYPE ${name} `);
  });

  it('counts responses by matched route pattern and status', async () => {
    lms = await createTestLms();
    await lms.app.request('/xqueue/get_submission/?queue_name=test-queue');
    await lms.app.request('/api/submissions/12');
    await lms.app.request('/no/such/path');
    const text = await (await lms.app.request('/metrics')).text();
    expect(text).toContain(
      'lms_http_responses_total{route="/xqueue/get_submission/",status="403"} 1',
    );
    expect(text).toContain('lms_http_responses_total{route="/api/submissions/:id",status="403"} 1');
    expect(text).toContain('lms_http_responses_total{route="unmatched",status="404"} 1');
  });

  it('answers /healthz', async () => {
    lms = await createTestLms();
    expect(await (await lms.app.request('/healthz')).json()).toEqual({ status: 'ok' });
  });

  it('refuses bodies over MAX_BODY_BYTES on every route', async () => {
    lms = await createTestLms({ config: { maxBodyBytes: 2048 } });
    const response = await new TestClient(lms.fetcher).postForm('/xqueue/login/', {
      username: 'xqueue_svc',
      password: 'x'.repeat(4096),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      return_code: 1,
      content: 'Request body larger than 2048 bytes',
    });
  });

  it('never answers 500 nor changes state for arbitrary xqueue input', async () => {
    const setup = await createGradingSetup();
    lms = setup.lms;
    await setup.submit(2);
    await setup.pull();
    const before = snapshot(setup.lms);
    const field = fc.oneof(fc.string({ maxLength: 300 }), fc.json({ maxDepth: 3 }));
    const paths = [
      '/xqueue/put_result/',
      '/xqueue/get_submission/',
      '/xqueue/get_queuelen/',
      '/xqueue/login/',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.dictionary(
          fc.constantFrom('xqueue_header', 'xqueue_body', 'queue_name', 'username', 'password'),
          field,
        ),
        fc.constantFrom('form', 'json', 'query'),
        async (path, fields, as) => {
          const response =
            as === 'form'
              ? await setup.grader.postForm(path, fields)
              : as === 'json'
                ? await setup.grader.postJson(path, fields)
                : await setup.grader.get(`${path}?${new URLSearchParams(fields)}`);
          expect(response.status).toBeLessThan(500);
          const body = (await response.json()) as Record<string, unknown>;
          expect('return_code' in body || typeof body.detail === 'string').toBe(true);
        },
      ),
      { numRuns: 150 },
    );
    expect(snapshot(setup.lms).submissions).toEqual(before.submissions);
  });
});

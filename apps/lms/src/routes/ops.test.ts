import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../auth/password.ts';
import { PEOPLE_ACCOUNT } from '../ops/metrics.ts';
import { TestClient } from '../testing/client.ts';
import {
  createTestLms,
  TEST_ITERATIONS,
  type TestLms,
  type TestLmsOptions,
  TRANSPORTS,
} from '../testing/fixtures.ts';
import { createGradingSetup } from '../testing/flows.ts';
import { upsertUser } from '../users.ts';

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
  'lms_session_admission_seconds',
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

async function scrape(lms: TestLms): Promise<string> {
  return (await new TestClient(lms.fetcher).get('/metrics')).text();
}

/** The sample lines of one metric, e.g. `lms_logins_total{account="x",path="web"} 2`. */
function samples(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`));
}

async function webLogin(lms: TestLms, username: string, password: string) {
  const response = await new TestClient(lms.fetcher).webLogin(username, password);
  expect(response.status).toBe(200);
}

describe.each(TRANSPORTS)('/metrics account labels over %s', (transport) => {
  const create = (options: TestLmsOptions = {}) => createTestLms({ ...options, transport });
  const people = `account="${PEOPLE_ACCOUNT}"`;

  it("counts students' and staff's logins and evictions in one series, naming nobody", async () => {
    lms = await create();
    await webLogin(lms, 'student1', 'student-pass');
    await webLogin(lms, 'student1', 'student-pass'); // evicts the first session
    await webLogin(lms, 'student2', 'student-pass');
    await webLogin(lms, 'staff', 'staff-pass');
    const text = await scrape(lms);
    expect(text).not.toMatch(/account="(student\d|staff)"/);
    expect(samples(text, 'lms_logins_total')).toEqual([`lms_logins_total{${people},path="web"} 4`]);
    expect(samples(text, 'lms_sessions_evicted_total')).toEqual([
      `lms_sessions_evicted_total{${people}} 1`,
    ]);
    // Every admission is timed, and only admissions: a wrong password never reaches the store.
    await new TestClient(lms.fetcher).webLogin('student1', 'wrong');
    const after = await scrape(lms);
    expect(after).toContain('lms_session_admission_seconds_count 4');
    expect(after).toContain('lms_session_admission_seconds_bucket{le="+Inf"} 4');
  });

  it('keeps its own series for the xqueue service account', async () => {
    lms = await create();
    await new TestClient(lms.fetcher).xqueueLogin('xqueue_svc', 'xqueue-pass');
    await new TestClient(lms.fetcher).xqueueLogin('xqueue_svc', 'xqueue-pass');
    await webLogin(lms, 'student1', 'student-pass');
    const text = await scrape(lms);
    expect(samples(text, 'lms_logins_total')).toEqual([
      'lms_logins_total{account="xqueue_svc",path="xqueue"} 2',
      `lms_logins_total{${people},path="web"} 1`,
    ]);
    expect(samples(text, 'lms_sessions_evicted_total')).toEqual([
      'lms_sessions_evicted_total{account="xqueue_svc"} 1',
    ]);
  });

  it('gives an account exempt by username or by group its own series', async () => {
    lms = await create({ policy: { exemptUsernames: ['student2'], exemptGroups: ['graders'] } });
    upsertUser(lms.database.db, {
      username: 'grader_bot',
      passwordHash: await hashPassword('grader-pass', TEST_ITERATIONS),
      groups: ['graders'],
      now: lms.clock.now(),
    });
    await webLogin(lms, 'student2', 'student-pass');
    await webLogin(lms, 'grader_bot', 'grader-pass');
    await webLogin(lms, 'student1', 'student-pass');
    expect(samples(await scrape(lms), 'lms_logins_total')).toEqual([
      'lms_logins_total{account="student2",path="web"} 1',
      'lms_logins_total{account="grader_bot",path="web"} 1',
      `lms_logins_total{${people},path="web"} 1`,
    ]);
  });

  it('names an account once staff exempt it at run time', async () => {
    lms = await create();
    await webLogin(lms, 'student3', 'student-pass');
    const staff = new TestClient(lms.fetcher);
    await staff.webLogin('staff', 'staff-pass');
    const update = await staff.request('/api/admin/policy', {
      method: 'PUT',
      body: JSON.stringify({ settings: { exemptUsernames: ['student3'] }, reason: 'test' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(update.status).toBe(200);
    await webLogin(lms, 'student3', 'student-pass');
    expect(samples(await scrape(lms), 'lms_logins_total')).toEqual([
      `lms_logins_total{${people},path="web"} 2`,
      'lms_logins_total{account="student3",path="web"} 1',
    ]);
  });

  it('names an account the storm detector alerted on, from the alert on', async () => {
    lms = await create({ config: { stormAlertEvictionsPerMinute: 2 } });
    for (let index = 0; index < 4; index++) await webLogin(lms, 'student4', 'student-pass');
    const text = await scrape(lms);
    // Logins 1-3 come before the alert (raised by login 3's eviction); login 4 comes after.
    expect(samples(text, 'lms_storm_alerts_total')).toEqual([
      'lms_storm_alerts_total{account="student4"} 1',
    ]);
    expect(samples(text, 'lms_logins_total')).toEqual([
      `lms_logins_total{${people},path="web"} 3`,
      'lms_logins_total{account="student4",path="web"} 1',
    ]);
    expect(samples(text, 'lms_sessions_evicted_total')).toEqual([
      `lms_sessions_evicted_total{${people}} 2`,
      'lms_sessions_evicted_total{account="student4"} 1',
    ]);
  });
});

describe.each(TRANSPORTS)('METRICS_TOKEN over %s', (transport) => {
  const TOKEN = 'metrics-token-0123456789';
  const create = (metricsToken?: string) => createTestLms({ transport, config: { metricsToken } });
  const get = (lms: TestLms, headers: Record<string, string> = {}) =>
    new TestClient(lms.fetcher).get('/metrics', headers);

  it.each([
    ['no Authorization header', {}],
    ['a wrong token', { Authorization: 'Bearer metrics-token-0123456780' }],
    ['a prefix of the token', { Authorization: 'Bearer metrics-token' }],
    ['the token under another scheme', { Authorization: `Basic ${TOKEN}` }],
    ['the token without a scheme', { Authorization: TOKEN }],
  ])('answers 401 with a Bearer challenge to %s', async (_, headers) => {
    lms = await create(TOKEN);
    const response = await get(lms, headers);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    expect(await response.text()).not.toContain('lms_logins_total');
  });

  it('serves the metrics to the right token, whatever the scheme case', async () => {
    lms = await create(TOKEN);
    for (const scheme of ['Bearer', 'bearer']) {
      const response = await get(lms, { Authorization: `${scheme} ${TOKEN}` });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('# TYPE lms_logins_total counter');
    }
  });

  it('is open when no token is set, as before', async () => {
    lms = await create();
    const response = await get(lms);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# TYPE lms_logins_total counter');
  });

  it('leaves /healthz open when a token is set', async () => {
    lms = await create(TOKEN);
    expect((await new TestClient(lms.fetcher).get('/healthz')).status).toBe(200);
  });
});

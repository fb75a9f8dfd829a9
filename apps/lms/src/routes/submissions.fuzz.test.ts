import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { listen, type TestLms } from '../testing/fixtures.ts';
import { createGradingSetup, resultFields } from '../testing/flows.ts';
import { storedState } from '../testing/hostile.ts';
import {
  type Endpoint,
  expectBodyLimit,
  expectDetail,
  FUZZ_MAX_BODY_BYTES,
  FUZZ_RUNS,
  hostileRequest,
  sendHostile,
} from '../testing/hostile-request.ts';

let lms: TestLms | undefined;
let server: { url: string; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await lms?.close();
});

const FIELDS = ['queue_name', 'problem_id', 'student_response'] as const;

/** student1 with two submissions (one graded), student2 with one, on a fresh LMS. */
async function studentsWithSubmissions() {
  const setup = await createGradingSetup({ config: { maxBodyBytes: FUZZ_MAX_BODY_BYTES } });
  lms = setup.lms;
  const own = await setup.submit(2);
  const pulled = (await setup.pull())!;
  expect((await setup.putResult(resultFields(pulled))).status).toBe(200);
  const other = new TestClient(setup.lms.fetcher);
  expect((await other.webLogin('student2', 'student-pass')).status).toBe(200);
  const response = await other.postJson('/api/submissions', {
    queue_name: 'test-queue',
    problem_id: 'test-queue-p2',
    student_response: 'theirs',
  });
  const { id: theirs } = (await response.json()) as { id: number };
  return { ...setup, own, theirs };
}

/** Valid field values, so that some generated bodies get past the name lookups. */
const realField = {
  queue_name: fc.constantFrom('test-queue', 'nope'),
  problem_id: fc.constantFrom('test-queue-p1', 'test-queue-p3', 'other-p1'),
  student_response: fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.jsonValue()),
};

describe('student API under hostile input', { timeout: 120_000 }, () => {
  it(`answers ${FUZZ_RUNS} generated POST /api/submissions as documented, storing only valid ones`, async () => {
    const { lms, student } = await studentsWithSubmissions();
    const endpoint: Endpoint = { method: 'POST', path: '/api/submissions', fields: FIELDS };
    const plausible = fc
      .tuple(fc.record(realField, { requiredKeys: ['queue_name', 'problem_id'] }), fc.boolean())
      .map(([record, overSocket]) => {
        const text = JSON.stringify(record);
        const body = { body: text, bytes: Buffer.byteLength(text), kind: 'plausible' };
        return { query: '', headers: {}, contentType: 'application/json', body, overSocket };
      });
    let created = 0;
    // About half the cases go over a real socket, as production receives them.
    server = await listen(lms.app);
    const { url } = server;
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileRequest(endpoint), plausible), async (request) => {
        const before = storedState(lms.database.sqlite);
        const answer = await sendHostile(lms, student, endpoint, request, url);
        const { status, body, sentBytes } = answer;
        expect(status).toBeLessThan(500);
        if (expectBodyLimit(status, sentBytes)) return;
        expect([201, 400, 403, 404, 415]).toContain(status);
        const after = storedState(lms.database.sqlite);
        if (status !== 201) {
          expectDetail(body);
          expect(after).toEqual(before);
          return;
        }
        created++;
        expect(body).toEqual({ id: expect.any(Number) });
        expect(after.counts.submissions).toBe((before.counts.submissions ?? 0) + 1);
        const row = lms.database.sqlite
          .prepare('SELECT state, student_id FROM submissions WHERE id = ?')
          .get((body as { id: number }).id);
        expect(row).toMatchObject({ state: 'pending' });
      }),
      { numRuns: FUZZ_RUNS },
    );
    // The generator must also reach the success path, or the checks above prove little.
    expect(created).toBeGreaterThan(0);
  });

  it(`answers ${FUZZ_RUNS} generated GET /api/submissions/:id with the own submission or 404`, async () => {
    const { lms, student, own, theirs } = await studentsWithSubmissions();
    const ids = [...own, theirs].map(String);
    const id = fc.oneof(
      fc.constantFrom(...ids),
      fc.constantFrom(...ids).map((text) => `${text}.0`),
      fc.constantFrom('0', '-1', '1e0', '0x1', '+1', ' 1', '01', '9007199254740993', '%zz', '..'),
      fc.string({ maxLength: 30 }).map(encodeURIComponent),
      fc.integer().map(String),
    );
    const headers = hostileRequest({ method: 'GET', path: '/' }).map((request) => request.headers);
    await fc.assert(
      fc.asyncProperty(id, headers, async (param, extra) => {
        const before = storedState(lms.database.sqlite);
        const endpoint: Endpoint = { method: 'GET', path: `/api/submissions/${param}` };
        const request = {
          query: '',
          headers: extra,
          contentType: undefined,
          body: noBody,
          overSocket: false,
        };
        const { status, body } = await sendHostile(lms, student, endpoint, request);
        expect([200, 403, 404]).toContain(status);
        if (status === 200) {
          // Only the canonical id of one's own submission is found.
          expect(own.map(String)).toContain(param);
          expect(body).toMatchObject({ id: Number(param), queue_name: 'test-queue' });
        } else {
          expectDetail(body);
        }
        expect(storedState(lms.database.sqlite)).toEqual(before);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

const noBody = { body: '', bytes: 0, kind: 'none' };

import type { PulledSubmission } from '@storm-lab/xqueue-protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestLms } from '../testing/fixtures.ts';
import { createGradingSetup, resultFields } from '../testing/flows.ts';
import { headerValue, hex } from '../testing/hostile.ts';
import {
  type Endpoint,
  expectBodyLimit,
  expectXqueueAnswer,
  FUZZ_MAX_BODY_BYTES,
  FUZZ_RUNS,
  fuzzEndpoint,
  hostileRequest,
} from '../testing/hostile-request.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

/**
 * A grader logged in, three submissions pulled (one graded): nothing is servable, so no
 * request in these tests may legitimately change the database.
 */
async function lockedQueue() {
  const setup = await createGradingSetup({
    // Off here: the throttle would answer every generated login with 429 after 10 failures.
    config: { maxBodyBytes: FUZZ_MAX_BODY_BYTES, loginThrottleFailures: 0 },
  });
  lms = setup.lms;
  await setup.submit(3);
  const pulled: PulledSubmission[] = [];
  for (let index = 0; index < 3; index++) pulled.push((await setup.pull())!);
  expect((await setup.putResult(resultFields(pulled[0]!))).status).toBe(200);
  return { ...setup, pulled };
}

const ENDPOINTS: Record<string, Endpoint & { allowed: number[] }> = {
  'GET /xqueue/login/': { method: 'GET', path: '/xqueue/login/', allowed: [200] },
  'POST /xqueue/login/': {
    method: 'POST',
    path: '/xqueue/login/',
    fields: ['username', 'password'],
    allowed: [400, 401, 403, 413],
  },
  'GET /xqueue/get_queuelen/': {
    method: 'GET',
    path: '/xqueue/get_queuelen/',
    query: ['queue_name'],
    allowed: [200, 400, 403],
  },
  'GET /xqueue/get_submission/': {
    method: 'GET',
    path: '/xqueue/get_submission/',
    query: ['queue_name'],
    allowed: [200, 400, 403],
  },
  'POST /xqueue/put_result/': {
    method: 'POST',
    path: '/xqueue/put_result/',
    fields: ['xqueue_header', 'xqueue_body'],
    allowed: [400, 403, 404, 413],
  },
  'POST /xqueue/status/': {
    method: 'POST',
    path: '/xqueue/status/',
    fields: ['x'],
    allowed: [200, 403, 413],
  },
};

describe('xqueue endpoints under hostile input', { timeout: 120_000 }, () => {
  it.each(Object.entries(ENDPOINTS))(
    `answers ${FUZZ_RUNS} generated requests to %s as documented and changes nothing`,
    async (_, endpoint) => {
      const { lms, grader } = await lockedQueue();
      await fuzzEndpoint({
        lms,
        client: grader,
        endpoint,
        check: ({ status, body, sentBytes }) => {
          if (!expectBodyLimit(status, sentBytes)) {
            expectXqueueAnswer(status, body, endpoint.allowed);
          }
          if (status === 200 && endpoint.path === '/xqueue/get_submission/') {
            expect(body).toMatchObject({ return_code: 1 });
          }
          // as edx-submissions' put_result: one fixed text for every unreadable reply
          if (status === 400 && endpoint.path === '/xqueue/put_result/') {
            expect(body).toEqual({ return_code: 1, content: 'Incorrect reply format' });
          }
          if (status === 200 && endpoint.path === '/xqueue/status/') {
            expect(body).toEqual({ return_code: 0, content: 'OK' });
          }
        },
      });
    },
  );

  it(`refuses ${FUZZ_RUNS} logouts without the session's CSRF token and ends no session`, async () => {
    const { lms, grader } = await lockedQueue();
    const token = grader.headers['X-CSRFToken']!;
    const endpoint: Endpoint = { method: 'POST', path: '/xqueue/logout/' };
    // A request with the real cookie and token would log out: that is the documented success.
    const arbitrary = hostileRequest(endpoint).filter(
      ({ headers }) =>
        'cookie' in headers ||
        ('x-csrftoken' in headers && headers['x-csrftoken']?.trim() !== token),
    );
    await fuzzEndpoint({
      lms,
      client: grader,
      endpoint,
      arbitrary,
      check: ({ status, body, sentBytes }) => {
        if (!expectBodyLimit(status, sentBytes)) expectXqueueAnswer(status, body, [403]);
      },
    });
  });

  it(`accepts put_result only with the current pull key (${FUZZ_RUNS} near misses)`, async () => {
    const { lms, grader, pulled } = await lockedQueue();
    const keys = pulled.map((submission) => submission.header.submission_key);
    const nearMiss = fc.oneof(
      fc.constantFrom(...keys).map((key) => key.toUpperCase()),
      fc.constantFrom(...keys).map((key) => key.slice(0, -1)),
      fc.constantFrom(...keys).map((key) => `${key} `),
      fc
        .tuple(fc.constantFrom(...keys), fc.nat(31), hex({ minLength: 1, maxLength: 1 }))
        .map(([key, at, char]) => key.slice(0, at) + char + key.slice(at + 1)),
      hex({ minLength: 32, maxLength: 32 }),
      headerValue.filter((value) => value.length > 0),
    );
    const grade = fc.record({ correct: fc.boolean(), score: fc.double({ min: 0, max: 1 }) });
    const endpoint: Endpoint = { method: 'POST', path: '/xqueue/put_result/' };
    const ids = pulled.map((submission) => submission.header.submission_id);
    const arbitrary = fc
      .record({
        index: fc.nat(2),
        key: nearMiss,
        grade,
        id: fc.option(fc.integer({ min: 1 })),
        overSocket: fc.boolean(),
      })
      // A near miss is no pair of a real submission's id and its key: a replaced character may
      // be the same one, and the explicit id may name another pulled submission.
      .filter(({ index, key, id }) => key !== keys[ids.indexOf(id ?? ids[index]!)])
      .map(({ index, key, grade, id, overSocket }) => {
        const fields = resultFields(
          { header: { submission_id: id ?? ids[index]!, submission_key: key } },
          { ...grade, msg: '<p>forged</p>' },
        );
        const text = new URLSearchParams(fields).toString();
        return {
          query: '',
          headers: {},
          contentType: 'application/x-www-form-urlencoded',
          body: { body: text, bytes: Buffer.byteLength(text), kind: 'form' },
          overSocket,
        };
      });
    await fuzzEndpoint({
      lms,
      client: grader,
      endpoint,
      arbitrary,
      check: ({ status, body }) => {
        expectXqueueAnswer(status, body, [400, 403, 404]);
        if (status === 403)
          expect(body).toEqual({ return_code: 1, content: 'Incorrect key for submission' });
      },
    });
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';
import {
  type Endpoint,
  expectBodyLimit,
  expectDetail,
  FUZZ_MAX_BODY_BYTES,
  FUZZ_RUNS,
  fuzzEndpoint,
  hostileRequest,
} from '../testing/hostile-request.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

/** A logged-in browser (student1) on a fresh LMS, throttle off so every guess is checked. */
async function browser() {
  lms = await createTestLms({
    config: { maxBodyBytes: FUZZ_MAX_BODY_BYTES, loginThrottleFailures: 0 },
  });
  const client = new TestClient(lms.fetcher);
  expect((await client.webLogin('student1', 'student-pass')).status).toBe(200);
  return { lms, client, token: client.headers['X-CSRFToken']! };
}

describe('browser login routes under hostile input', { timeout: 60_000 }, () => {
  it(`refuses ${FUZZ_RUNS} generated POST /login with a detail and changes nothing`, async () => {
    const { lms, client } = await browser();
    const endpoint: Endpoint = {
      method: 'POST',
      path: '/login',
      fields: ['username', 'password', 'csrfmiddlewaretoken'],
    };
    await fuzzEndpoint({
      lms,
      client,
      endpoint,
      check: ({ status, body, sentBytes }) => {
        if (expectBodyLimit(status, sentBytes)) return;
        expect([400, 401, 403]).toContain(status);
        expectDetail(body);
      },
    });
  });

  it(`answers ${FUZZ_RUNS} generated POST /logout without the session's token and ends nothing`, async () => {
    const { lms, client, token } = await browser();
    const endpoint: Endpoint = { method: 'POST', path: '/logout' };
    const arbitrary = hostileRequest(endpoint).filter(
      ({ headers }) =>
        'cookie' in headers ||
        ('x-csrftoken' in headers && headers['x-csrftoken']?.trim() !== token),
    );
    await fuzzEndpoint({
      lms,
      client,
      endpoint,
      arbitrary,
      // Anonymous (a spoiled cookie): 200, nothing to end; logged in with a bad token: 403.
      check: ({ status, body, sentBytes }) => {
        if (expectBodyLimit(status, sentBytes)) return;
        expect([200, 403]).toContain(status);
        expectDetail(body);
      },
    });
  });

  it(`answers ${FUZZ_RUNS} generated GET /me with the user or 401`, async () => {
    const { lms, client } = await browser();
    await fuzzEndpoint({
      lms,
      client,
      endpoint: { method: 'GET', path: '/me', query: ['user'] },
      check: ({ status, body }) => {
        expect([200, 401]).toContain(status);
        if (status === 200) expect(body).toMatchObject({ username: 'student1' });
        else expect(body).toMatchObject({ detail: expect.any(String) });
      },
    });
  });
});

import { NOT_AUTHENTICATED_DETAIL } from '@storm-lab/xqueue-protocol';
import fc from 'fast-check';
import { expect } from 'vitest';
import { PERMISSION_DENIED_DETAIL } from '../http/session.ts';
import type { TestClient } from './client.ts';
import { listen, type TestLms } from './fixtures.ts';
import {
  contentType,
  type HostileBody,
  hostileBody,
  hostileHeaders,
  hostileQuery,
  storedState,
} from './hostile.ts';

/** Bodies above this get 413 in the fuzz tests (small, so oversized cases are cheap). */
export const FUZZ_MAX_BODY_BYTES = 4096;
/** Generated cases per endpoint. */
export const FUZZ_RUNS = 1000;

/** One endpoint under test: its method, path, and the names it reads. */
export interface Endpoint {
  method: 'GET' | 'POST';
  path: string;
  fields?: readonly string[];
  query?: readonly string[];
}

export interface HostileRequest {
  query: string;
  headers: Record<string, string>;
  contentType: string | undefined;
  body: HostileBody;
  /**
   * Sent over a real socket to the app served on loopback, as production receives it (fetch
   * declares a Content-Length, so the server's declared-length limit runs), instead of through
   * `app.request` (no Content-Length: the streamed limit runs).
   */
  overSocket: boolean;
}

/** Hostile requests for an endpoint: query, header overrides, content type and body. */
export function hostileRequest(endpoint: Endpoint): fc.Arbitrary<HostileRequest> {
  return fc.record({
    query: endpoint.query ? hostileQuery(endpoint.query) : fc.constant(''),
    headers: hostileHeaders,
    contentType,
    body: hostileBody(endpoint.fields ?? ['x'], FUZZ_MAX_BODY_BYTES),
    overSocket: fc.boolean(),
  });
}

/**
 * Sends a hostile request as `client` would (its cookies and CSRF header), with the generated
 * overrides on top; GET sends no body. With `socketUrl` (the app served by {@link listen}), a
 * request marked `overSocket` goes there over HTTP.
 */
export async function sendHostile(
  lms: TestLms,
  client: TestClient,
  endpoint: Endpoint,
  request: HostileRequest,
  socketUrl?: string,
): Promise<{ status: number; body: unknown; sentBytes: number }> {
  const cookie = [...client.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  const headers = new Headers({ ...client.headers, cookie, ...request.headers });
  const type = request.contentType ?? request.body.type;
  if (type !== undefined) headers.set('content-type', type);
  const withBody = endpoint.method !== 'GET';
  const path = request.query ? `${endpoint.path}?${request.query}` : endpoint.path;
  const init = { method: endpoint.method, headers, body: withBody ? request.body.body : undefined };
  const response =
    request.overSocket && socketUrl
      ? await fetch(`${socketUrl}${path}`, init)
      : await lms.app.request(path, init);
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body, sentBytes: withBody ? request.body.bytes : 0 };
}

const CSRF_FAILURE = /^CSRF Failed: CSRF (cookie not set|token missing|token incorrect)\.$/;

/** The body every refusal of the LMS carries: DRF's `detail` with a known message. */
export function expectDetail(body: unknown): void {
  expect(body).toEqual({ detail: expect.any(String) });
  expect((body as { detail: string }).detail.length).toBeGreaterThan(0);
}

/**
 * Asserts a documented xqueue answer: never a 5xx; the envelope (`return_code` 1 with a message)
 * for every failure, except the authentication 403s, which are DRF's `detail` as upstream's.
 */
export function expectXqueueAnswer(status: number, body: unknown, allowed: readonly number[]) {
  expect(allowed).toContain(status);
  if (status === 403 && typeof body === 'object' && body !== null && 'detail' in body) {
    const { detail } = body as { detail: string };
    expect(
      detail === NOT_AUTHENTICATED_DETAIL ||
        detail === PERMISSION_DENIED_DETAIL ||
        CSRF_FAILURE.test(detail),
    ).toBe(true);
    return;
  }
  if (status === 200) {
    expect(body).toEqual({ return_code: expect.any(Number), content: expect.anything() });
    return;
  }
  expect(body).toEqual({ return_code: 1, content: expect.any(String) });
}

/**
 * Checks the body limit on a generated request: over the limit always 413, under never.
 * Returns true when the request was over (nothing else to check then).
 */
export function expectBodyLimit(status: number, sentBytes: number): boolean {
  if (sentBytes > FUZZ_MAX_BODY_BYTES) {
    expect(status).toBe(413);
    return true;
  }
  expect(status).not.toBe(413);
  return false;
}

/**
 * Runs `numRuns` hostile requests against one endpoint on one app and session, asserting each
 * answer with `check` and that the stored state is exactly as before.
 */
export async function fuzzEndpoint(options: {
  lms: TestLms;
  client: TestClient;
  endpoint: Endpoint;
  arbitrary?: fc.Arbitrary<HostileRequest>;
  check: (answer: { status: number; body: unknown; sentBytes: number }) => void;
}): Promise<void> {
  const { lms, client, endpoint } = options;
  // About half the cases go over a real socket (see HostileRequest.overSocket).
  const server = await listen(lms.app);
  try {
    await fc.assert(
      fc.asyncProperty(options.arbitrary ?? hostileRequest(endpoint), async (request) => {
        const before = storedState(lms.database.sqlite);
        const answer = await sendHostile(lms, client, endpoint, request, server.url);
        expect(answer.status).toBeLessThan(500);
        options.check(answer);
        expect(storedState(lms.database.sqlite)).toEqual(before);
      }),
      { numRuns: FUZZ_RUNS },
    );
  } finally {
    await server.close();
  }
}

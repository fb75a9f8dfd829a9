import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from './testing/client.ts';
import { createTestLms, type TestLms, TRANSPORTS } from './testing/fixtures.ts';

const MAX_BODY_BYTES = 2048;
let lms: TestLms | undefined;
afterEach(() => lms?.close());

/** Every route the app registers with a method that carries a body, params filled in. */
function routesWithBody(lms: TestLms): { method: string; path: string }[] {
  const seen = new Set<string>();
  const routes: { method: string; path: string }[] = [];
  for (const route of lms.app.routes) {
    if (['GET', 'HEAD', 'ALL'].includes(route.method)) continue;
    const path = route.path.replace(/:[^/]+/g, '1').replace(/\*$/, 'x');
    const key = `${route.method} ${path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    routes.push({ method: route.method, path });
  }
  return routes;
}

function expectTooLarge(path: string, status: number, body: unknown) {
  expect(status, path).toBe(413);
  const message = `Request body larger than ${MAX_BODY_BYTES} bytes`;
  // xqueue clients read every answer as an envelope; everything else answers DRF-style.
  if (path.startsWith('/xqueue/')) expect(body).toEqual({ return_code: 1, content: message });
  else expect(body).toEqual({ detail: message });
}

describe.each(TRANSPORTS)('request body limit over %s', (transport) => {
  it('answers 413 on every route with a body one byte over MAX_BODY_BYTES, logged in or not', async () => {
    lms = await createTestLms({ transport, config: { maxBodyBytes: MAX_BODY_BYTES } });
    const staff = new TestClient(lms.fetcher);
    expect((await staff.webLogin('staff', 'staff-pass')).status).toBe(200);
    const anonymous = new TestClient(lms.fetcher);
    const routes = routesWithBody(lms);
    expect(routes.map((route) => route.path)).toEqual(
      expect.arrayContaining(['/xqueue/put_result/', '/api/submissions', '/login', '/logout']),
    );
    for (const client of [anonymous, staff]) {
      for (const { method, path } of routes) {
        const response = await client.request(path, {
          method,
          // {"x":"…"} is 8 bytes plus the padding: one byte over.
          body: JSON.stringify({ x: 'x'.repeat(MAX_BODY_BYTES - 7) }),
          headers: { 'content-type': 'application/json' },
        });
        expectTooLarge(path, response.status, await response.json());
      }
    }
  });

  it('answers 413 to an oversized body without Content-Length (streamed) on an xqueue route', async () => {
    lms = await createTestLms({ transport, config: { maxBodyBytes: MAX_BODY_BYTES } });
    const chunks = [new Uint8Array(1500).fill(120), new Uint8Array(1500).fill(120)];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await lms.fetcher('/xqueue/login/', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      duplex: 'half',
    } as RequestInit);
    expectTooLarge('/xqueue/login/', response.status, await response.json());
  });

  it('accepts a body of exactly MAX_BODY_BYTES', async () => {
    lms = await createTestLms({ transport, config: { maxBodyBytes: MAX_BODY_BYTES } });
    const fields = `username=xqueue_svc&password=xqueue-pass&pad=`;
    const body = fields + 'x'.repeat(MAX_BODY_BYTES - fields.length);
    const response = await lms.fetcher('/xqueue/login/', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(200);
  });
});

import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../testing/fixtures.ts';
import { clientAddress, UNKNOWN_ADDRESS } from './client-address.ts';
import type { LmsEnv } from './context.ts';

function echoApp() {
  const app = new Hono<LmsEnv>();
  app.get('/', (c) => c.text(clientAddress(c, c.req.query('trust') === 'true')));
  return app;
}

let server: { url: string; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('clientAddress', () => {
  it("takes the socket's remote address over a real connection", async () => {
    server = await listen(echoApp());
    const spoofed = { 'x-forwarded-for': '198.51.100.7' };
    expect(await (await fetch(server.url, { headers: spoofed })).text()).toBe('127.0.0.1');
  });

  it('takes the last X-Forwarded-For entry only behind a trusted proxy', async () => {
    server = await listen(echoApp());
    const headers = { 'x-forwarded-for': '198.51.100.7, 203.0.113.5' };
    expect(await (await fetch(`${server.url}/?trust=true`, { headers })).text()).toBe(
      '203.0.113.5',
    );
    expect(await (await fetch(`${server.url}/?trust=true`)).text()).toBe('127.0.0.1');
  });

  it('says unknown without a socket (app.request) unless a trusted proxy names the client', async () => {
    const app = echoApp();
    expect(await (await app.request('/')).text()).toBe(UNKNOWN_ADDRESS);
    const headers = { 'x-forwarded-for': '203.0.113.5' };
    expect(await (await app.request('/', { headers })).text()).toBe(UNKNOWN_ADDRESS);
    expect(await (await app.request('/?trust=true', { headers })).text()).toBe('203.0.113.5');
    const oversized = { 'x-forwarded-for': 'x'.repeat(100) };
    expect(await (await app.request('/?trust=true', { headers: oversized })).text()).toBe(
      UNKNOWN_ADDRESS,
    );
  });
});

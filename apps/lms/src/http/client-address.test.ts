import { request } from 'node:http';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../testing/fixtures.ts';
import { clientAddress, compileProxyTrust, UNKNOWN_ADDRESS } from './client-address.ts';
import type { LmsEnv } from './context.ts';

/** Answers the client address as the app would read it, trusting `proxies`. */
function echoApp(proxies: readonly string[]) {
  const trust = compileProxyTrust(proxies);
  const app = new Hono<LmsEnv>();
  app.get('/', (c) => c.text(clientAddress(c, trust)));
  return app;
}

let server: { url: string; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** GET `url` on a connection from `localAddress` (any 127.0.0.0/8 address reaches loopback). */
function getFrom(url: string, localAddress: string, forwardedFor?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : {};
    const sent = request(url, { localAddress, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve(body));
    });
    sent.on('error', reject);
    sent.end();
  });
}

describe('clientAddress', () => {
  it("takes the socket's remote address when no proxy is configured", async () => {
    server = await listen(echoApp([]));
    expect(await getFrom(server.url, '127.0.0.1', '198.51.100.7')).toBe('127.0.0.1');
  });

  it('reads X-Forwarded-For only from a configured proxy: a direct client cannot name an address', async () => {
    server = await listen(echoApp(['127.0.0.1']));
    // Through the proxy (127.0.0.1): the client it names.
    expect(await getFrom(server.url, '127.0.0.1', '198.51.100.7, 203.0.113.5')).toBe('203.0.113.5');
    expect(await getFrom(server.url, '127.0.0.1')).toBe('127.0.0.1');
    // Directly from 127.0.0.2, not a proxy: its own header is never read.
    expect(await getFrom(server.url, '127.0.0.2', '203.0.113.5')).toBe('127.0.0.2');
  });

  it('takes the right-most address that is not a proxy, through several proxies', async () => {
    server = await listen(echoApp(['loopback', '10.0.0.0/8']));
    // client 203.0.113.5 -> edge proxy 10.0.0.7 -> proxy on loopback -> LMS
    expect(await getFrom(server.url, '127.0.0.2', '198.51.100.7, 203.0.113.5, 10.0.0.7')).toBe(
      '203.0.113.5',
    );
    // Every entry a proxy: the left-most, as proxy-addr answers.
    expect(await getFrom(server.url, '127.0.0.2', '10.0.0.9, 10.0.0.7')).toBe('10.0.0.9');
    // A proxy passing on garbage: the proxy that forwarded it.
    expect(await getFrom(server.url, '127.0.0.2', `${'x'.repeat(100)}, 10.0.0.7`)).toBe('10.0.0.7');
  });

  it('says unknown without a socket (app.request), whatever the headers', async () => {
    const app = echoApp(['loopback']);
    expect(await (await app.request('/')).text()).toBe(UNKNOWN_ADDRESS);
    const headers = { 'x-forwarded-for': '203.0.113.5' };
    expect(await (await app.request('/', { headers })).text()).toBe(UNKNOWN_ADDRESS);
  });
});

describe('compileProxyTrust', () => {
  it('matches addresses, ranges and named ranges, IPv4-mapped peers included', () => {
    const trust = compileProxyTrust(['10.0.0.0/8', 'loopback', '192.0.2.1']);
    for (const address of ['10.1.2.3', '127.0.0.1', '::1', '::ffff:10.0.0.2', '192.0.2.1']) {
      expect(trust(address, 0), address).toBe(true);
    }
    for (const address of ['11.0.0.1', '192.0.2.2', 'unknown', '']) {
      expect(trust(address, 0), address).toBe(false);
    }
    expect(compileProxyTrust([])('127.0.0.1', 0)).toBe(false);
  });

  it('answers the same for an address asked again, and past its memo of 1024 addresses', () => {
    const trust = compileProxyTrust(['10.0.0.0/8']);
    for (let round = 0; round < 2; round++) {
      for (let index = 0; index < 1500; index++) {
        const address = `${index % 2 === 0 ? 10 : 11}.0.${index >> 8}.${index & 255}`;
        expect(trust(address, round), address).toBe(index % 2 === 0);
      }
    }
  });

  it('refuses an entry that is not an address or range', () => {
    expect(() => compileProxyTrust(['10.0.0.0/33'])).toThrow(/10\.0\.0\.0\/33/);
    expect(() => compileProxyTrust(['proxy.local'])).toThrow(/proxy\.local/);
  });
});

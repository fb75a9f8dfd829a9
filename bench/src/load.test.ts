import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fixedLoad, loadGenerator, parseWrk } from './load.ts';

// What Debian's wrk 4.1.0 prints with --latency, shape for shape (figures made up).
const WRK_OUTPUT = `Running 2s test @ http://127.0.0.1:40111/xqueue/get_queuelen/?queue_name=q
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  640.00us  21.30ms   91.20%
    Req/Sec    16.20k   410.00    16.90k    75.00%
  Latency Distribution
     50%  812.00us
     75%    3.30ms
     90%    3.70ms
     99%    1.02s
  32456 requests in 2.00s, 6.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  16227.81
Transfer/sec:      3.05MB
`;

describe('parseWrk', () => {
  it('reads the rate, the total, the median and 99th percentile in ms, and every error', () => {
    expect(parseWrk(WRK_OUTPUT)).toEqual({
      requestsPerSecond: 16228,
      latencyP50Ms: 0.81,
      latencyP99Ms: 1020,
      errors: 7,
      total: 32456,
    });
  });

  it('counts no errors when wrk prints none, and refuses output without the figures', () => {
    const clean = WRK_OUTPUT.replace(/ {2}Socket errors.*\n {2}Non-2xx.*\n/, '');
    expect(parseWrk(clean).errors).toBe(0);
    expect(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(
      /wrk printed no line matching/,
    );
  });
});

describe('loadGenerator', () => {
  it('takes BENCH_LOAD_GENERATOR and refuses anything else', async () => {
    await expect(loadGenerator({ BENCH_LOAD_GENERATOR: 'autocannon' })).resolves.toBe('autocannon');
    await expect(loadGenerator({ BENCH_LOAD_GENERATOR: 'ab' })).rejects.toThrow(
      'BENCH_LOAD_GENERATOR=ab is invalid: expected wrk or autocannon',
    );
  });
});

describe('fixedLoad', () => {
  // .ci/run installs wrk: the bench's default generator is measured against a real server.
  it('loads a real server through wrk, with the headers given, and says so', async () => {
    const seen = new Set<string | undefined>();
    const server = createServer((request, response) => {
      seen.add(request.headers.cookie);
      response.statusCode = request.url === '/ok' ? 200 : 404;
      response.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      expect(await loadGenerator({})).toBe('wrk');
      const ok = await fixedLoad({
        url: `http://127.0.0.1:${port}/ok`,
        headers: { Cookie: 'sessionid=abc' },
        connections: 4,
        seconds: 1,
      });
      expect(ok.generator).toBe('wrk');
      expect(ok.total).toBeGreaterThan(0);
      expect(ok.requestsPerSecond).toBeGreaterThan(0);
      expect(ok.errors).toBe(0);
      expect([...seen]).toEqual(['sessionid=abc']);
      const missing = await fixedLoad({
        url: `http://127.0.0.1:${port}/missing`,
        connections: 2,
        seconds: 1,
      });
      // Every answer was a 404, and there were answers: an empty run would pass the first line.
      expect(missing.total).toBeGreaterThan(0);
      expect(missing.errors).toBe(missing.total);
    } finally {
      server.close();
    }
  });
});

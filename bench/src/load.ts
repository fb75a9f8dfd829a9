import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WebClient } from '@storm-lab/lms-client';
import autocannon from 'autocannon';
import type { XQueueSession } from './xqueue-session.ts';

const run = promisify(execFile);

/**
 * The program behind a fixed load: `wrk` (C, Debian's package) takes a small part of a core,
 * autocannon (Node) about a whole one, which on 2 cores is taken from the server measured.
 */
export type LoadGenerator = 'wrk' | 'autocannon';

/** Requests per second and latency of one measured load. */
export interface LoadFigures {
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  errors: number;
  total: number;
  /** Absent for loads the bench generates itself (request chains). */
  generator?: LoadGenerator;
}

export interface FixedLoadOptions {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}

let found: Promise<LoadGenerator> | undefined;

/**
 * `BENCH_LOAD_GENERATOR` (`wrk` or `autocannon`), else wrk when it is installed, else
 * autocannon. Asking for wrk when it is missing is an error, not a silent fallback.
 */
export function loadGenerator(
  env: Record<string, string | undefined> = process.env,
): Promise<LoadGenerator> {
  const asked = env.BENCH_LOAD_GENERATOR ?? '';
  if (asked !== '' && asked !== 'wrk' && asked !== 'autocannon') {
    return Promise.reject(
      new Error(`BENCH_LOAD_GENERATOR=${asked} is invalid: expected wrk or autocannon`),
    );
  }
  if (asked === 'autocannon') return Promise.resolve('autocannon');
  found ??= run('wrk', ['--version']).then(
    () => 'wrk' as const,
    // wrk --version exits 1 after printing its version; only a missing program throws ENOENT.
    (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? 'autocannon' : 'wrk'),
  );
  return found.then((generator) => {
    if (asked === 'wrk' && generator !== 'wrk') {
      throw new Error('BENCH_LOAD_GENERATOR=wrk but wrk is not installed (apt-get install wrk)');
    }
    return generator;
  });
}

/** One URL, fixed headers, `connections` kept busy for `seconds`: see {@link loadGenerator}. */
export async function fixedLoad(options: FixedLoadOptions): Promise<LoadFigures> {
  const generator = await loadGenerator();
  const figures = generator === 'wrk' ? await wrkLoad(options) : await autocannonLoad(options);
  return { ...figures, generator };
}

const WRK_UNITS_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** A wrk duration (`812.00us`, `2.35ms`, `1.02s`) in milliseconds. */
function wrkMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!match) throw new Error(`unreadable wrk duration: ${text}`);
  return Number(match[1]) * (WRK_UNITS_MS[match[2] as string] as number);
}

/**
 * Reads what `wrk --latency` prints: the total (`N requests in ...`), `Requests/sec:`, the
 * latency distribution's 50% and 99% lines, `Non-2xx or 3xx responses:` and the socket errors
 * (absent when there are none).
 */
export function parseWrk(output: string): Omit<LoadFigures, 'generator'> {
  const line = (pattern: RegExp) => {
    const match = pattern.exec(output);
    if (!match) throw new Error(`wrk printed no line matching ${pattern}:\n${output}`);
    return match;
  };
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    output,
  );
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSecond: Math.round(Number(line(/Requests\/sec:\s+([\d.]+)/)[1])),
    latencyP50Ms: Math.round(wrkMs(line(/^\s+50%\s+(\S+)$/m)[1] as string) * 100) / 100,
    latencyP99Ms: Math.round(wrkMs(line(/^\s+99%\s+(\S+)$/m)[1] as string) * 100) / 100,
    errors: Number(non2xx?.[1] ?? 0) + socketErrors,
    total: Number(line(/(\d+) requests in /)[1]),
  };
}

/** wrk with one thread: on 2 cores a second thread would only take the server's core. */
async function wrkLoad(options: FixedLoadOptions): Promise<Omit<LoadFigures, 'generator'>> {
  const headers = Object.entries(options.headers ?? {}).flatMap(([name, value]) => [
    '-H',
    `${name}: ${value}`,
  ]);
  const { stdout } = await run('wrk', [
    '-t1',
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--latency',
    ...headers,
    options.url,
  ]);
  return parseWrk(stdout);
}

/** autocannon against one URL: the well-kept Node load generator. */
async function autocannonLoad(options: FixedLoadOptions): Promise<Omit<LoadFigures, 'generator'>> {
  const result = await autocannon({
    url: options.url,
    headers: options.headers,
    connections: options.connections,
    duration: options.seconds,
  });
  return {
    requestsPerSecond: Math.round(result.requests.average),
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    errors: result.errors + result.non2xx,
    total: result.requests.total,
  };
}

/** The `p`th percentile (0-100) of ascending values, nearest rank; 0 when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/**
 * Runs `step` in `workers` concurrent loops for `seconds`; counts outcomes and latencies.
 * Used where each request depends on the previous answer (pull, then post with its key).
 */
export async function loopLoad(options: {
  workers: number;
  seconds: number;
  step: (worker: number) => Promise<string>;
  ok?: (outcome: string) => boolean;
}): Promise<LoadFigures & { outcomes: Record<string, number> }> {
  const deadline = Date.now() + options.seconds * 1000;
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const started = Date.now();
  await Promise.all(
    Array.from({ length: options.workers }, async (_, worker) => {
      while (Date.now() < deadline) {
        const begin = performance.now();
        let outcome: string;
        try {
          outcome = await options.step(worker);
        } catch (error) {
          outcome = `error:${(error as Error).name}`;
        }
        latencies.push(performance.now() - begin);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  const isOk = options.ok ?? ((outcome: string) => !outcome.startsWith('error'));
  const okCount = Object.entries(outcomes).reduce(
    (sum, [key, n]) => (isOk(key) ? sum + n : sum),
    0,
  );
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: Math.round(okCount / elapsed),
    latencyP50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    latencyP99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    errors: latencies.length - okCount,
    total: latencies.length,
    outcomes,
  };
}

/** Creates `count` submissions through the student API, `parallel` at a time. */
export async function prefillSubmissions(options: {
  lmsUrl: string;
  username: string;
  password: string;
  queue: string;
  count: number;
  parallel?: number;
}): Promise<void> {
  // The student's web client the storm runner uses: same login handshake, same CSRF rules.
  const student = new WebClient(options.lmsUrl);
  await student.login(options.username, options.password, { retryForMs: 10_000 });
  let next = 0;
  await Promise.all(
    Array.from({ length: options.parallel ?? 16 }, async () => {
      while (next < options.count) {
        next++;
        // With LMS_WORKERS > 1 a write may meet another worker's lock: a 503, tried again.
        const response = await student.request(
          'POST',
          '/api/submissions',
          { queue_name: options.queue, problem_id: `${options.queue}-p1`, student_response: 'x' },
          { retryForMs: 10_000 },
        );
        await response.arrayBuffer();
        if (response.status !== 201) throw new Error(`prefill failed: ${response.status}`);
      }
    }),
  );
}

export type { XQueueSession };

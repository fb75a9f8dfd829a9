import { WebClient } from '@storm-lab/lms-client';
import autocannon from 'autocannon';
import type { XQueueSession } from './xqueue-session.ts';

/** Requests per second and latency of one measured load. */
export interface LoadFigures {
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  errors: number;
  total: number;
}

/** autocannon against one URL: the well-kept load generator for fixed requests. */
export async function fixedLoad(options: {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}): Promise<LoadFigures> {
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

import { readFile } from 'node:fs/promises';
import {
  type LocalLms,
  type LocalRedis,
  startLms,
  startRedis,
  sumMetric,
  waitFor,
} from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { newConnectionFetcher } from './testing/client.ts';
import { TEST_ITERATIONS } from './testing/fixtures.ts';

// LMS_WORKERS through a Redis outage: a worker that dies while the session Redis is down is
// replaced by one that serves once Redis is back, and the LMS never stops serving meanwhile.

const WORKERS = 2;
/** How long the LMS gets to serve with every worker once Redis answers again. */
const RECOVERY_MS = 30_000;

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

/** A private Redis the test stops and starts again on the same port, and an LMS on it. */
async function lmsOnOwnRedis() {
  const redis = { current: await startRedis() };
  cleanups.push(() => redis.current.stop());
  const lms: LocalLms = await startLms({
    env: {
      PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS),
      LOG_LEVEL: 'info',
      LMS_WORKERS: String(WORKERS),
      SESSION_STORE: 'redis',
      SESSION_REDIS_URL: redis.current.url,
    },
  });
  cleanups.push(() => lms.stop());
  const restartRedis = async (): Promise<LocalRedis> => {
    redis.current = await startRedis({ port: redis.current.port });
    return redis.current;
  };
  return { lms, redis, restartRedis };
}

/** `lms_workers_serving` as /metrics says it. */
async function serving(lms: LocalLms): Promise<number> {
  const response = await newConnectionFetcher(lms.url)('/metrics', {});
  return sumMetric(await response.text(), 'lms_workers_serving');
}

async function waitServing(lms: LocalLms, count: number, timeoutMs: number): Promise<void> {
  await waitFor(async () => ((await serving(lms)) === count ? true : undefined), {
    timeoutMs,
    intervalMs: 200,
    what: `lms_workers_serving ${count}`,
  });
}

/** The pids of the primary's children (its workers, serving or not). */
async function childPids(pid: number): Promise<Set<number>> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  return new Set(text.split(' ').filter(Boolean).map(Number));
}

/** The pids of the workers that logged `listening`. */
function listeningPids(lms: LocalLms): Set<number> {
  const pids = new Set<number>();
  for (const line of lms.process.output().split('\n')) {
    if (line.includes('"listening"')) pids.add((JSON.parse(line) as { pid: number }).pid);
  }
  return pids;
}

/** Polls /healthz, each time on a new connection (so on each serving worker in turn). */
function pollHealth(lms: LocalLms) {
  const fetcher = newConnectionFetcher(lms.url);
  const failures: string[] = [];
  let answered = 0;
  let polling = true;
  const loop = (async () => {
    while (polling) {
      try {
        const response = await fetcher('/healthz', {});
        if (response.status === 200) answered++;
        else failures.push(`status ${response.status}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      polling = false;
      await loop;
      return { answered, failures };
    },
  };
}

/** Kills one serving worker and waits until the primary has seen it die. */
async function killWorker(lms: LocalLms, pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(
    () => (lms.process.output().includes('worker died; starting another') ? true : undefined),
    { timeoutMs: 10_000, what: 'the primary to see the worker die' },
  );
}

describe(`LMS_WORKERS=${WORKERS} through a Redis outage`, { timeout: 180_000 }, () => {
  it('serves with every worker again once Redis is back, after a worker died while it was down', async () => {
    const { lms, redis, restartRedis } = await lmsOnOwnRedis();
    await waitServing(lms, WORKERS, 30_000);
    const [victim] = listeningPids(lms);
    await redis.current.stop();
    await killWorker(lms, victim!);
    const health = pollHealth(lms);
    // The replacement has tried Redis and found it down.
    await waitFor(() => (lms.process.output().includes('cannot be reached') ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the replacement to find Redis down',
    });
    await restartRedis();
    await waitServing(lms, WORKERS, RECOVERY_MS);
    const { answered, failures } = await health.stop();
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(0);
    // No worker is left that neither serves nor exits.
    const serving = listeningPids(lms);
    expect([...(await childPids(lms.process.pid))].filter((pid) => !serving.has(pid))).toEqual([]);
  });

  it('replaces a worker that gave up waiting for Redis, instead of stopping the LMS', async () => {
    const { lms, redis, restartRedis } = await lmsOnOwnRedis();
    await waitServing(lms, WORKERS, 30_000);
    const first = listeningPids(lms);
    const [victim] = first;
    await redis.current.stop();
    await killWorker(lms, victim!);
    const health = pollHealth(lms);
    const replacement = await waitFor(
      async () => [...(await childPids(lms.process.pid))].find((pid) => !first.has(pid)),
      { timeoutMs: 30_000, what: 'the primary to start a replacement' },
    );
    // Redis stays down for longer than the replacement waits for it.
    await waitFor(
      async () => ((await childPids(lms.process.pid)).has(replacement) ? undefined : true),
      { timeoutMs: 60_000, what: `the replacement ${replacement} to give up and exit` },
    );
    await restartRedis();
    await waitServing(lms, WORKERS, RECOVERY_MS);
    const { answered, failures } = await health.stop();
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(0);
    expect(lms.process.output()).not.toContain('shutting down');
  });

  it('refuses to start when Redis cannot be reached at start, and says which, before any worker waits', async () => {
    const failing = startLms({
      env: {
        PASSWORD_HASH_ITERATIONS: String(TEST_ITERATIONS),
        LMS_WORKERS: String(WORKERS),
        SESSION_STORE: 'redis',
        SESSION_REDIS_URL: 'redis://user:secret@127.0.0.1:1',
      },
    });
    // It exits (a process that neither serves nor exits would time out instead).
    await expect(failing).rejects.toThrow(/lms serve exited before listening \(code 2/);
    await expect(failing).rejects.toThrow(
      /SESSION_STORE=redis, but Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1 cannot be reached/,
    );
    // A setting to fix, said at once: no worker was started to wait for Redis.
    await expect(failing).rejects.not.toThrow(/waiting for it before listening/);
  });

  it('stops on SIGTERM while its workers wait to be replaced, and starts none after', async () => {
    const { lms } = await lmsOnOwnRedis();
    await waitServing(lms, WORKERS, 30_000);
    for (const pid of listeningPids(lms)) process.kill(pid, 'SIGKILL');
    await waitFor(
      () =>
        lms.process.output().split('worker died; starting another').length > WORKERS
          ? true
          : undefined,
      { timeoutMs: 10_000, what: 'the primary to see every worker die' },
    );
    process.kill(lms.process.pid, 'SIGTERM');
    const exited = await Promise.race([
      lms.process.exited,
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 20_000)),
    ]);
    expect(exited).toEqual({ code: 0, signal: null });
  });
});

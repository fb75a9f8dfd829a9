import { startWatchers, sumMetric, useRedis, waitFor } from '@storm-lab/harness';
import { prefillSubmissions } from './load.ts';
import { treeCpuSeconds } from './proc.ts';
import { benchLms, QUEUE, SERVICE, STUDENT } from './sections.ts';

/** One fleet run: how many logins and gradings it made, and the LMS CPU it cost. */
export interface FleetRun {
  connections: number;
  /** LMS worker processes and where they keep sessions (absent in results before both existed). */
  lmsWorkers?: number;
  sessionStore?: 'sqlite' | 'redis';
  exempt: boolean;
  seconds: number;
  compression: number;
  logins: number;
  graded: number;
  lmsCpuSeconds: number;
  loginsPerHour: number;
  gradedPerMinute: number;
  /**
   * The prefilled queue was empty at the end: the graders were faster than the queue was
   * deep, so `gradedPerMinute` is a lower bound of what they can do, not their limit.
   */
  queueRanDry: boolean;
  lmsCpuSecondsPerHour: number;
}

async function counter(lmsUrl: string, name: string, labels: Record<string, string> = {}) {
  return sumMetric(await (await fetch(`${lmsUrl}/metrics`)).text(), name, labels);
}

/**
 * Runs K watcher connections (one replica, one queue) against a prefilled queue for `seconds`,
 * with the service account exempt or not. `compression` divides poll intervals and PBKDF2
 * iterations like `pnpm storm` does; rates are scaled back to production time.
 */
export async function fleetRun(options: {
  connections: number;
  exempt: boolean;
  seconds: number;
  compression: number;
  prefill: number;
  redisUrl?: string;
  /** LMS_WORKERS (default 1); more than one needs `sessionStore: 'redis'`. */
  lmsWorkers?: number;
  /** SESSION_STORE (default sqlite); Redis sessions go to the fleet's Redis, as in compose. */
  sessionStore?: 'sqlite' | 'redis';
}): Promise<FleetRun> {
  const redis = await useRedis(options.redisUrl);
  const redisUrl = redis.url;
  const lmsWorkers = options.lmsWorkers ?? 1;
  const sessionStore = options.sessionStore ?? 'sqlite';
  const lms = await benchLms({
    PASSWORD_HASH_ITERATIONS: String(Math.round(1_000_000 / options.compression)),
    SINGLE_LOGIN_EXEMPT_USERNAMES: options.exempt ? SERVICE.username : '',
    LMS_WORKERS: String(lmsWorkers),
    SESSION_STORE: sessionStore,
    SESSION_REDIS_URL: redisUrl,
    SESSION_REDIS_PREFIX: `bench-${process.pid}-${options.connections}-${options.exempt}:`,
  });
  try {
    await prefillSubmissions({ lmsUrl: lms.url, ...STUDENT, queue: QUEUE, count: options.prefill });
    // The LMS's whole process tree: with LMS_WORKERS > 1 the workers are the primary's children.
    const pid = lms.process.pid;
    const fleet = await startWatchers({
      replicas: 1,
      env: {
        LOG_LEVEL: 'error',
        LMS_URL: lms.url,
        REDIS_URL: redisUrl,
        XQUEUE_USERNAME: SERVICE.username,
        XQUEUE_PASSWORD: SERVICE.password,
        WATCHER_QUEUES: QUEUE,
        WATCHER_CONNECTIONS: String(options.connections),
        XQWATCHER_POLL_INTERVAL: String(1 / options.compression),
        XQWATCHER_LOGIN_POLL_INTERVAL: String(5 / options.compression),
        XQWATCHER_REQUESTS_TIMEOUT: '5',
        WATCHER_QUEUE_PREFIX: `bench-${process.pid}-${options.connections}-${options.exempt}`,
      },
    });
    try {
      // Start counting once every connection has made its first login: that is the fleet
      // starting, not the rate this run measures.
      await waitFor(
        async () =>
          (await counter(lms.url, 'lms_logins_total', { path: 'xqueue' })) >= options.connections
            ? true
            : undefined,
        { timeoutMs: 60_000, what: 'the first login of every connection' },
      );
      const loginsBefore = await counter(lms.url, 'lms_logins_total', { path: 'xqueue' });
      const gradedBefore = await counter(lms.url, 'lms_submissions_graded_total');
      const cpuBefore = await treeCpuSeconds(pid);
      await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
      const logins =
        (await counter(lms.url, 'lms_logins_total', { path: 'xqueue' })) - loginsBefore;
      const graded = (await counter(lms.url, 'lms_submissions_graded_total')) - gradedBefore;
      const cpu = (await treeCpuSeconds(pid)) - cpuBefore;
      const left = await counter(lms.url, 'lms_queue_length', { queue: QUEUE });
      const productionHours = (options.seconds * options.compression) / 3600;
      return {
        connections: options.connections,
        lmsWorkers,
        sessionStore,
        exempt: options.exempt,
        seconds: options.seconds,
        compression: options.compression,
        logins,
        graded,
        lmsCpuSeconds: Math.round(cpu * 100) / 100,
        loginsPerHour: Math.round(logins / productionHours),
        gradedPerMinute: Math.round((graded / (productionHours * 60)) * 10) / 10,
        queueRanDry: left === 0,
        lmsCpuSecondsPerHour: Math.round(cpu / productionHours),
      };
    } finally {
      await fleet.stopAll();
    }
  } finally {
    await lms.stop();
    await redis.stop();
  }
}

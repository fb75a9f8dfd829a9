import { availableParallelism } from 'node:os';
import type { SuperviseOptions } from '@storm-lab/harness';
import { burstShare, compress } from './compression.ts';
import type { Scenario } from './scenarios.ts';

/** The fleet and the load, the same for every scenario of one run. */
export interface RunSettings {
  replicas: number;
  queues: number;
  connections: number;
  durationSeconds: number;
  submissions: number;
  students: number;
  /** Production seconds per run second; every production time and cost is divided by it. */
  compression: number;
  /** Production seconds one grading takes (the mock grader sleeps them, compressed). */
  gradingSeconds: number;
  /** Longest wait after the load for submissions still being graded. */
  drainSeconds: number;
  /** Use this Redis instead of starting a private one. */
  redisUrl?: string | undefined;
  /** Where the LMS keeps sessions: its database file, or the run's Redis (`SESSION_STORE`). */
  sessionStore: 'sqlite' | 'redis';
  /** LMS worker processes behind its port (`LMS_WORKERS`); more than one needs Redis sessions. */
  lmsWorkers: number;
  serviceUsername: string;
  servicePassword: string;
  studentPassword: string;
}

/** The hash cost's share for this machine: a replica's connections against its cores. */
export function hashShare(settings: Pick<RunSettings, 'queues' | 'connections'>): number {
  return burstShare(settings.queues * settings.connections, availableParallelism());
}

/**
 * Where person number `n` (1-based) browses from, as the LMS's proxy names them: one address of
 * 10.64.0.0/10 each, none of them the fleet's.
 *
 * @example
 * studentAddress(1); // '10.64.0.1'
 * studentAddress(300); // '10.64.1.44'
 */
export function studentAddress(n: number): string {
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** The run's queue names, `queue-1..N`. */
export function queueNames(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `queue-${index + 1}`);
}

/** The seed's right answer for a problem (see apps/lms seed). */
export function answerFor(_queue: string, problem: string): string {
  return `answer-${problem}`;
}

/**
 * The LMS's environment for a run: compressed hashing and lock, sessions in the run's Redis
 * under `sessionPrefix` when `sessionStore` is `redis`, then the scenario's settings.
 */
export function lmsEnv(
  settings: RunSettings,
  scenario: Scenario,
  redis?: { url: string; sessionPrefix: string },
): Record<string, string> {
  const times = compress(settings.compression, settings.gradingSeconds, hashShare(settings));
  const sessions: Record<string, string> =
    settings.sessionStore === 'redis' && redis
      ? {
          SESSION_STORE: 'redis',
          SESSION_REDIS_URL: redis.url,
          SESSION_REDIS_PREFIX: redis.sessionPrefix,
          LMS_WORKERS: String(settings.lmsWorkers),
        }
      : {};
  return {
    LOG_LEVEL: 'warn',
    // As in production, the LMS stands behind a reverse proxy: people's requests carry their own
    // address (studentAddress), the fleet's come from its pods (here loopback, the socket's), so
    // the login throttle never counts a storm's logins against a student. The lab's "proxy" is
    // every process on this host: only loopback peers may name a client in X-Forwarded-For.
    TRUST_PROXY: 'loopback',
    PASSWORD_HASH_ITERATIONS: String(times.hashIterations),
    XQUEUE_LOCK_SECONDS: String(times.lockSeconds),
    ...sessions,
    ...scenario.lms,
  };
}

/**
 * The watcher fleet's environment for a run: the service account, the fleet's shape, upstream's
 * current client (`WATCHER_MODE=current`) with compressed manager settings, graders that take the
 * compressed grading time, then the scenario's.
 */
export function watcherEnv(
  settings: RunSettings,
  scenario: Scenario,
  lmsUrl: string,
  redisUrl: string,
  prefix: string,
): Record<string, string> {
  const times = compress(settings.compression, settings.gradingSeconds);
  const handler =
    times.gradingMs > 0
      ? { HANDLER: 'slow-flaky', KWARGS: { latency_ms: Math.round(times.gradingMs) } }
      : { HANDLER: 'exact-answer' };
  return {
    LOG_LEVEL: 'warn',
    LMS_URL: lmsUrl,
    REDIS_URL: redisUrl,
    XQUEUE_USERNAME: settings.serviceUsername,
    XQUEUE_PASSWORD: settings.servicePassword,
    WATCHER_QUEUES: queueNames(settings.queues).join(','),
    WATCHER_CONNECTIONS: String(settings.connections),
    WATCHER_MODE: 'current',
    XQWATCHER_POLL_INTERVAL: String(times.pollIntervalSeconds),
    XQWATCHER_LOGIN_POLL_INTERVAL: String(times.loginPollIntervalSeconds),
    // Compressed like the login it cuts off: a login costs as many timeouts as in production.
    XQWATCHER_REQUESTS_TIMEOUT: String(times.requestsTimeoutSeconds),
    XQWATCHER_POLL_TIME: String(times.pollTimeSeconds),
    WATCHER_QUEUE_PREFIX: prefix,
    WATCHER_METRICS_PORT: '0',
    WATCHER_JOB_LOCK_MS: '5000',
    WATCHER_DEFAULT_HANDLER: JSON.stringify(handler),
    ...scenario.watcher,
  };
}

/**
 * How the fleet's supervisor restarts a replica that exits: Kubernetes' CrashLoopBackOff
 * (10 s doubling to 5 min), compressed like everything else.
 */
export function restartBackoff(settings: RunSettings): SuperviseOptions {
  const times = compress(settings.compression);
  return { backoffBaseMs: times.restartBackoffBaseMs, backoffMaxMs: times.restartBackoffMaxMs };
}

/** `pnpm lms seed` arguments for a run: its queues, students and the service account. */
export function seedArgs(
  settings: RunSettings,
  queues: readonly string[],
  students = settings.students,
) {
  return [
    '--queues',
    queues.join(','),
    '--students',
    String(students),
    '--service-username',
    settings.serviceUsername,
    '--service-password',
    settings.servicePassword,
    '--student-password',
    settings.studentPassword,
  ];
}

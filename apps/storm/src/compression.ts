/**
 * The production values a run compresses, each where it comes from. A run at compression c
 * divides every one of them by c, so every ratio between them holds as in production: above all
 * the cost of a login (PBKDF2) against the request timeout that cuts it off.
 */
export const PRODUCTION = {
  /** Django 5.2's PBKDF2 iterations. */
  hashIterations: 1_000_000,
  /** xqueue-watcher's POLL_INTERVAL. */
  pollIntervalSeconds: 1,
  /** xqueue-watcher's LOGIN_POLL_INTERVAL. */
  loginPollIntervalSeconds: 5,
  /** xqueue-watcher's REQUESTS_TIMEOUT, on every request including both login requests. */
  requestsTimeoutSeconds: 1,
  /** xqueue-watcher's POLL_TIME: how often Manager.wait looks for dead connections. */
  pollTimeSeconds: 10,
  /** edx-submissions serves a pulled submission without a result again after 5 minutes. */
  lockSeconds: 300,
  /** Kubernetes' CrashLoopBackOff: 10 s, doubling, capped at 5 minutes. */
  restartBackoffBaseSeconds: 10,
  restartBackoffMaxSeconds: 300,
  /**
   * One grading, pull to result: a course's Python grader running the student's code in a jail
   * takes about a second. The lab's mock grader sleeps for it (`--grading-seconds`); an instant
   * grader leaves the window between a pull and its `put_result` too short for an eviction.
   */
  gradingSeconds: 1,
} as const;

/** The compressed values one run uses. */
export interface CompressedTimes {
  hashIterations: number;
  pollIntervalSeconds: number;
  loginPollIntervalSeconds: number;
  requestsTimeoutSeconds: number;
  pollTimeSeconds: number;
  lockSeconds: number;
  restartBackoffBaseMs: number;
  restartBackoffMaxMs: number;
  gradingMs: number;
}

/**
 * How much cheaper a login's hash is made because this machine has fewer cores than a replica
 * has connections. A replica's connections log in at once when it starts; a production LMS
 * (many gunicorn workers on many cores) hashes them side by side, so each login takes about one
 * hash's time; here `cpus` cores take turns at them, and each hash is divided by this share so a
 * login's wall time, not only its CPU cost, keeps production's ratio to `REQUESTS_TIMEOUT`.
 *
 * @example
 * burstShare(4, 2); // 2: four first logins on two cores
 * burstShare(2, 8); // 1
 */
export function burstShare(connectionsPerReplica: number, cpus: number): number {
  return Math.max(1, connectionsPerReplica / Math.max(1, cpus));
}

/**
 * Divides every production value by `compression`, and the hash cost also by `burst` (see
 * {@link burstShare}).
 *
 * @example
 * compress(5).requestsTimeoutSeconds; // 0.2
 * compress(2, 1, 2).hashIterations; // 250000
 */
export function compress(
  compression: number,
  gradingSeconds: number = PRODUCTION.gradingSeconds,
  burst = 1,
): CompressedTimes {
  const c = compression;
  return {
    hashIterations: Math.max(1, Math.round(PRODUCTION.hashIterations / c / burst)),
    pollIntervalSeconds: PRODUCTION.pollIntervalSeconds / c,
    loginPollIntervalSeconds: PRODUCTION.loginPollIntervalSeconds / c,
    requestsTimeoutSeconds: PRODUCTION.requestsTimeoutSeconds / c,
    pollTimeSeconds: PRODUCTION.pollTimeSeconds / c,
    lockSeconds: PRODUCTION.lockSeconds / c,
    restartBackoffBaseMs: (PRODUCTION.restartBackoffBaseSeconds * 1000) / c,
    restartBackoffMaxMs: (PRODUCTION.restartBackoffMaxSeconds * 1000) / c,
    gradingMs: (gradingSeconds * 1000) / c,
  };
}

/** A duration for people: 200 ms, 2 s, 5 min. */
export function duration(seconds: number): string {
  if (seconds >= 120) return `${+(seconds / 60).toFixed(1)} min`;
  if (seconds >= 1) return `${+seconds.toFixed(2)} s`;
  return `${+(seconds * 1000).toFixed(1)} ms`;
}

/** Each compressed value as `[name, production, this run]`, for the note. */
function valuesOf(
  compression: number,
  gradingSeconds: number,
  burst: number,
): Array<[string, string, string]> {
  const run = compress(compression, gradingSeconds, burst);
  const share =
    burst > 1
      ? ` (also divided by ${+burst.toFixed(2)}: a replica's first logins share fewer cores than production's LMS gives them)`
      : '';
  return [
    ['PBKDF2 iterations', '1,000,000', `${run.hashIterations.toLocaleString('en-US')}${share}`],
    ['POLL_INTERVAL', '1 s', duration(run.pollIntervalSeconds)],
    ['LOGIN_POLL_INTERVAL', '5 s', duration(run.loginPollIntervalSeconds)],
    ['REQUESTS_TIMEOUT', '1 s', duration(run.requestsTimeoutSeconds)],
    ['POLL_TIME', '10 s', duration(run.pollTimeSeconds)],
    ['XQUEUE_LOCK_SECONDS', '300', String(+run.lockSeconds.toFixed(2))],
    [
      'replica restart backoff',
      '10 s doubling to 5 min',
      `${duration(run.restartBackoffBaseMs / 1000)} doubling to ${duration(run.restartBackoffMaxMs / 1000)}`,
    ],
    [
      'one grading',
      gradingSeconds === 0 ? 'instant' : duration(gradingSeconds),
      gradingSeconds === 0 ? 'instant' : duration(run.gradingMs / 1000),
    ],
  ];
}

// A login's fixed cost beyond hashing (about 50 ms here) does not compress; this keeps it from
// timing out a cure's first logins.
const ARRANGEMENT =
  'Students log in before the fleet starts, replicas start one after another (each once the ' +
  "previous one's connections logged in), and scenarios run one at a time unless --parallel says otherwise.";

/**
 * The rule and the values of one run, printed under the table and written in the report.
 *
 * @example
 * compressionNote(5, 6);
 * // "5x: every production time and cost is divided by 5 (...): PBKDF2 iterations 1,000,000 -> 200,000, ..." (default 2x)"
 */
export function compressionNote(
  compression: number,
  loadSeconds: number,
  gradingSeconds: number = PRODUCTION.gradingSeconds,
  burst = 1,
): string {
  const values = valuesOf(compression, gradingSeconds, burst);
  if (compression === 1 && burst === 1) {
    const list = values.map(([name, production]) => `${name} ${production}`).join(', ');
    return `none (1x): the production values, ${list}; ${loadSeconds} s of load are ${duration(loadSeconds)} of production. ${ARRANGEMENT}`;
  }
  const list = values
    .map(([name, production, run]) => `${name} ${production} -> ${run}`)
    .join(', ');
  return (
    `${compression}x: every production time and cost is divided by ${compression}, so each ` +
    'keeps its production ratio to the others (above all, the PBKDF2 cost of a login to the ' +
    `request timeout that cuts it off): ${list}; ${loadSeconds} s of load stand for ` +
    `${duration(loadSeconds * compression)} ` +
    'of production, and "per hour" and "per minute" figures are scaled so. ' +
    ARRANGEMENT
  );
}

import { duration } from '@storm-lab/storm';
import type { NoiseSamples } from './noise.ts';
import type { Random } from './random.ts';

/** When students submit: evenly over the load (as `pnpm storm`), or steady with a surge. */
export type LoadShape =
  | { kind: 'even'; submissions: number }
  | {
      kind: 'steady';
      perMinute: number;
      /** A deadline surge on top of the steady load, or none. */
      surge: { submissions: number; startSeconds: number; seconds: number } | null;
    };

/** Everything one simulated run is made of; times in production seconds unless named. */
export interface SimSettings {
  replicas: number;
  /** Queue entries per replica (conf.d entries). */
  queues: number;
  connections: number;
  /**
   * Every entry names the same xqueue queue (`queue-1`), as a config that repeats one queue in a
   * second conf.d file to add connections (the regime map's fleets); otherwise entry i watches
   * `queue-i`.
   */
  sameQueue: boolean;
  /**
   * Which queues students submit to: `all` of the entries' queues in turn, or only the
   * `first` (MIT's second queue, mitx-686xgrader, had no course using it: its connections
   * polled an empty queue, and logged in as often as the others).
   */
  studentQueues: 'all' | 'first';
  /**
   * The LMS's login throttle (this project's, `LOGIN_THROTTLE_FAILURES` 10): off in production
   * mode, as edx-submissions' xqueue login has none; on with `--lab`, as `pnpm storm` runs it.
   */
  loginThrottle: boolean;
  /** How the LMS serves: see `LmsCosts.model` (production: `workers`; `--lab`: `event-loop`). */
  lmsModel: 'workers' | 'event-loop';
  /** The LMS's synchronous workers (gunicorn/uwsgi), or the cores it hashes on for `event-loop`. */
  lmsWorkers: number;
  /**
   * `event-loop` only: the threads the LMS hashes on, sharing its `lmsWorkers` cores (Node's
   * libuv pool: 4 unless UV_THREADPOOL_SIZE says otherwise). Null: as many as cores.
   */
  lmsThreads: number | null;
  /** PBKDF2 iterations of a login (PASSWORD_HASH_ITERATIONS). */
  iterations: number;
  /** Virtual nanoseconds per PBKDF2 iteration in an LMS worker. */
  iterationNs: number;
  /** An LMS worker's time for any request besides hashing, in ms. */
  requestMs: number;
  /** One-way network latency, in ms: the mean of each leg's. */
  latencyMs: number;
  /**
   * Each leg's latency is drawn uniformly from `latencyMs x (1 +/- latencyJitter)`. Production:
   * 0.5, as no network answers in the same time twice; without it, equal costs keep the
   * connections in lockstep and one can lose every race for the session (docs/simulation.md).
   * `--lab` replays draw recorded round trips instead, and `--lab --noise none` none: 0.
   */
  latencyJitter: number;
  requestsTimeoutSeconds: number;
  pollIntervalSeconds: number;
  loginPollIntervalSeconds: number;
  pollTimeSeconds: number;
  /** XQUEUE_LOCK_SECONDS: how long a pulled submission waits before it is served again. */
  lockSeconds: number;
  restartBackoffBaseSeconds: number;
  restartBackoffMaxSeconds: number;
  /** Replicas start one after another (`pnpm storm`'s way), or all at once (a deployment's). */
  oneByOne: boolean;
  /** From a replica's start until its connections log in. */
  replicaStartupSeconds: number;
  gradingSeconds: number;
  students: number;
  load: LoadShape;
  /** Seconds of student load. */
  durationSeconds: number;
  /** Longest wait after the load for submissions still being graded. */
  drainSeconds: number;
  /**
   * When the drain's students ask about their ungraded submissions: `every-round`, as
   * `pnpm storm`'s drain does (ten times a second, `--lab`), or `once-graded`, only once the
   * LMS's own count says every submission is graded (production: a drain stalled for minutes
   * would ask about hundreds of submissions ten times a second).
   */
  drainAsks: 'every-round' | 'once-graded';
  /**
   * Production seconds per simulated second: 1 for production; the lab's compression when the
   * simulator replays `pnpm storm` (`--lab`), whose times are already divided by it.
   */
  compression: number;
  /**
   * Recorded timing noise to draw from (`--lab`: the lab's, `sim/lab-noise.json`): each password
   * hash's cost times a recorded ratio, each BullMQ job starting a recorded hand-over after it
   * was added, each watcher timer firing a recorded lateness late. `null`: none (production).
   */
  noise: NoiseSamples | null;
  seed: number;
}

/** One PBKDF2-SHA256 iteration on a server core (OpenSSL, as Python's hashlib and Node use). */
export const DEFAULT_ITERATION_NS = 250;

/**
 * Production, uncompressed: Django 5.2's hash, xqueue-watcher's defaults (1 s polls, 1 s
 * timeout, 5 s login retry, 10 s POLL_TIME), edx-submissions' 5-minute lock, Kubernetes'
 * CrashLoopBackOff (10 s doubling to 5 min); the fleet and the load of `pnpm storm`'s default.
 */
export const PRODUCTION_SETTINGS: SimSettings = {
  replicas: 2,
  queues: 2,
  connections: 2,
  sameQueue: false,
  studentQueues: 'all',
  loginThrottle: false,
  lmsModel: 'workers',
  lmsWorkers: 4,
  lmsThreads: null,
  iterations: 1_000_000,
  iterationNs: DEFAULT_ITERATION_NS,
  requestMs: 10,
  latencyMs: 1,
  latencyJitter: 0.5,
  requestsTimeoutSeconds: 1,
  pollIntervalSeconds: 1,
  loginPollIntervalSeconds: 5,
  pollTimeSeconds: 10,
  lockSeconds: 300,
  restartBackoffBaseSeconds: 10,
  restartBackoffMaxSeconds: 300,
  oneByOne: false,
  replicaStartupSeconds: 2,
  gradingSeconds: 1,
  students: 40,
  load: { kind: 'steady', perMinute: 20, surge: null },
  durationSeconds: 3600,
  drainSeconds: 600,
  drainAsks: 'once-graded',
  compression: 1,
  noise: null,
  seed: 1,
};

/**
 * The moments (seconds after the load starts) at which submissions are made, in order. Each
 * falls at a seeded point of its own slot, so two seeds differ and one seed repeats.
 *
 * @example
 * submissionTimes({ kind: 'even', submissions: 4 }, 8, () => 0); // [0, 2, 4, 6]
 */
export function submissionTimes(
  load: LoadShape,
  durationSeconds: number,
  random: Random,
): number[] {
  const spread = (count: number, start: number, seconds: number, jitter: boolean) =>
    Array.from({ length: count }, (_, index) => {
      const slot = seconds / count;
      return start + index * slot + (jitter ? random() * slot : 0);
    });
  if (load.kind === 'even') {
    return spread(load.submissions, 0, durationSeconds, false);
  }
  const steady = spread(
    Math.floor((load.perMinute * durationSeconds) / 60),
    0,
    durationSeconds,
    true,
  );
  const surge = load.surge
    ? spread(load.surge.submissions, load.surge.startSeconds, load.surge.seconds, true)
    : [];
  return [...steady, ...surge].sort((a, b) => a - b);
}

/** Total submissions a load makes. */
export function submissionsOf(load: LoadShape, durationSeconds: number): number {
  if (load.kind === 'even') return load.submissions;
  return Math.floor((load.perMinute * durationSeconds) / 60) + (load.surge?.submissions ?? 0);
}

/**
 * The times and costs an uncompressed run used, for its report: what the storm runner's
 * compression note says of a lab run, said of the simulator's own settings.
 *
 * @example
 * settingsNote(PRODUCTION_SETTINGS);
 * // "none (1x), production's times as simulated: PBKDF2 1,000,000 iterations at 250 ns (a 250 ms login), ..."
 */
export function settingsNote(settings: SimSettings): string {
  const loginMs = (settings.iterations * settings.iterationNs) / 1e6;
  const grading = settings.gradingSeconds === 0 ? 'instant' : duration(settings.gradingSeconds);
  return (
    "none (1x), production's times as simulated: " +
    `PBKDF2 ${settings.iterations.toLocaleString('en-US')} iterations at ${settings.iterationNs} ns ` +
    `(a ${+loginMs.toFixed(1)} ms login), ${settings.lmsWorkers} LMS workers, ` +
    `${settings.requestMs} ms per request, ${settings.latencyMs} ms latency each way` +
    (settings.latencyJitter > 0 ? ` (+/- ${settings.latencyJitter * 100}%, uniformly); ` : '; ') +
    `REQUESTS_TIMEOUT ${duration(settings.requestsTimeoutSeconds)}, ` +
    `POLL_INTERVAL ${duration(settings.pollIntervalSeconds)}, ` +
    `LOGIN_POLL_INTERVAL ${duration(settings.loginPollIntervalSeconds)}, ` +
    `POLL_TIME ${duration(settings.pollTimeSeconds)}, XQUEUE_LOCK_SECONDS ${settings.lockSeconds}, ` +
    `replica restart backoff ${duration(settings.restartBackoffBaseSeconds)} doubling to ` +
    `${duration(settings.restartBackoffMaxSeconds)}, one grading ${grading}; ` +
    `${settings.durationSeconds} s of load. Students log in before the fleet starts; the ` +
    (settings.oneByOne
      ? "replicas start one after another (each once the previous one's connections logged in)"
      : "replicas start together, as a Deployment's pods do") +
    (settings.studentQueues === 'first' && settings.queues > 1 && !settings.sameQueue
      ? '; students submit to the first queue only, the others idle.'
      : '.')
  );
}

import type { Sample, Series } from './samples.ts';

export type { Sample, Series } from './samples.ts';

export type Verdict = 'STORM' | 'STALL' | 'HEALTHY';

/** What one scenario showed, as written to report.json under `scenarios[]`. */
export interface ScenarioFigures {
  name: string;
  description: string;
  /** The scenario's LMS environment, on top of the run's defaults. */
  lms: Record<string, string>;
  /** The scenario's watcher environment, on top of the run's defaults. */
  watcher: Record<string, string>;
  replicas: number;
  queues: number;
  connections: number;
  /** replicas x queues x connections: the logins a healthy fleet makes. */
  totalConnections: number;
  durationSeconds: number;
  /** Logins of the service account over xqueue. */
  logins: number;
  /** Logins beyond each connection's first, per hour of production time. */
  loginsPerHour: number;
  /** 403 answers on get_submission and put_result. */
  forbidden: number;
  forbiddenPerLogin: number;
  graded: number;
  submitted: number;
  /** Submitted but not graded when the run ended. */
  waitingAtEnd: number;
  /** Submissions graded during the run, per minute of production time. */
  gradedPerMinute: number;
  wrongScores: number;
  /**
   * Lab runs only: submissions graded more than once, counted where grading happens (each
   * replica's `grading-started`/`grading-finished` lines, `countGradings`). A compare run kills
   * no replica, so no repeat is excused.
   */
  gradedTwice?: number;
  evictions: number;
  stormAlerts: number;
  /** Watcher connections that died (`connection-died` lines of every replica). */
  connectionDeaths: number;
  /** Each death's replica, time after the fleet started, and reason (empty when none died). */
  connectionDeathReasons: string[];
  /** Replicas the supervisor restarted after they exited on their own. */
  replicaRestarts: number;
  /** Login requests that timed out (`login-timeout` lines of every replica). */
  loginTimeouts: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  /** A student's second login ended the first: true/false, or null where nothing is enforced. */
  personSingleSession: boolean | null;
  verdict: Verdict;
  /** Simulated runs only: the share of the LMS workers' time spent serving (0..1). */
  lmsWorkerUtilisation?: number;
  /** Simulated runs only: students' own requests, from sending to answer (worker wait included). */
  studentLatencyP50Ms?: number | null;
  studentLatencyP95Ms?: number | null;
  /** Per-second counts, derived from `samples`. */
  series: Series;
  /** The run's state about four times a second (report.json and the charts). */
  samples: Sample[];
}

/** The share of the submissions below which a run that is not a storm is a stall. */
export const STALL_GRADED_SHARE = 0.9;

/** The rule behind the verdict, printed with every table. */
export const VERDICT_RULE =
  'STORM when service-account logins exceed 2x the connections (a login storm); otherwise STALL when 403s on get_submission/put_result reach the number of connections (evicted connections that do not recover) or fewer than 90% of the submissions were graded by the end of the run (grading far below the offered load); otherwise HEALTHY';

/** What {@link verdictOf} looks at. */
export interface VerdictInput {
  logins: number;
  forbidden: number;
  totalConnections: number;
  graded: number;
  submitted: number;
}

/**
 * Applies {@link VERDICT_RULE}.
 *
 * @example
 * verdictOf({ logins: 8, forbidden: 0, totalConnections: 8, graded: 10, submitted: 24 }); // 'STALL'
 */
export function verdictOf(run: VerdictInput): Verdict {
  if (run.logins > 2 * run.totalConnections) return 'STORM';
  const stalled =
    run.forbidden >= run.totalConnections || run.graded < STALL_GRADED_SHARE * run.submitted;
  return stalled ? 'STALL' : 'HEALTHY';
}

/** The p-th percentile (0..100) by nearest rank, or null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? null;
}

/**
 * Scales a count seen in a compressed run to a production rate per hour: a run of
 * `durationSeconds` at `compression`x stands for `durationSeconds * compression` seconds.
 */
export function perHour(count: number, durationSeconds: number, compression: number): number {
  const productionSeconds = durationSeconds * compression;
  return productionSeconds > 0 ? Math.round((count * 3600) / productionSeconds) : 0;
}

/**
 * Scales a count seen in a compressed run to a production rate per minute, with one decimal
 * below 100 and none above.
 *
 * @example
 * perMinute(24, 9, 5); // 24 graded in 9 s at 5x (45 s of production): 32
 */
export function perMinute(count: number, durationSeconds: number, compression: number): number {
  const productionMinutes = (durationSeconds * compression) / 60;
  if (productionMinutes <= 0) return 0;
  const rate = count / productionMinutes;
  return rate >= 100 ? Math.round(rate) : Math.round(rate * 10) / 10;
}

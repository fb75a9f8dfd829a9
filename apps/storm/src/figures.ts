/** Per-second counters sampled during a run; index i is second i+1 since the load started. */
export interface Series {
  seconds: number[];
  logins: number[];
  forbidden: number[];
  graded: number[];
}

export type Verdict = 'STORM' | 'HEALTHY';

/** What one scenario showed, as written to report.json under `scenarios[]`. */
export interface ScenarioFigures {
  name: string;
  description: string;
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
  wrongScores: number;
  evictions: number;
  stormAlerts: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  /** A student's second login ended the first: true/false, or null where nothing is enforced. */
  personSingleSession: boolean | null;
  verdict: Verdict;
  series: Series;
}

/** The rule behind the verdict, printed with every table. */
export const VERDICT_RULE =
  'STORM when service-account logins exceed 2x the connections or 403s on get_submission/put_result reach the number of connections; otherwise HEALTHY';

/** Applies {@link VERDICT_RULE}. */
export function verdictOf(logins: number, forbidden: number, totalConnections: number): Verdict {
  return logins > 2 * totalConnections || forbidden >= totalConnections ? 'STORM' : 'HEALTHY';
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

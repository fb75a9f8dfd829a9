import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LiveStats } from './live-stats.ts';

/** The LMS's Prometheus metrics; names are read by the storm runner, keep them stable. */
export interface LmsMetrics {
  registry: Registry;
  logins: Counter<'account' | 'path'>;
  loginFailures: Counter<'path'>;
  sessionsEvicted: Counter<'account'>;
  stormAlerts: Counter<'account'>;
  httpResponses: Counter<'route' | 'status'>;
  queueLength: Gauge<'queue'>;
  submissionsCreated: Counter<'queue'>;
  submissionsGraded: Counter<'queue'>;
  gradingLatency: Histogram<string>;
  /** Per-second counters for the dashboard: bump them where the metrics above are bumped. */
  live: LiveStats;
}

/**
 * Creates the metrics on a registry of their own, so tests can build many apps.
 * `queueLengths` is called at scrape time; the scrape also samples them into `live`.
 *
 * @example
 * const metrics = createMetrics(() => [{ queue: 'test-queue', length: 3 }], createLiveStats({ now }));
 * await metrics.registry.metrics();
 */
export function createMetrics(
  queueLengths: () => { queue: string; length: number }[],
  live: LiveStats,
): LmsMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    live,
    logins: new Counter({
      name: 'lms_logins_total',
      help: 'Successful logins by account and path (xqueue or web).',
      labelNames: ['account', 'path'],
      registers,
    }),
    loginFailures: new Counter({
      name: 'lms_login_failures_total',
      help: 'Failed logins (bad credentials, denied by the session limit) by path.',
      labelNames: ['path'],
      registers,
    }),
    sessionsEvicted: new Counter({
      name: 'lms_sessions_evicted_total',
      help: 'Sessions ended by the single-login policy, by account (dry run included).',
      labelNames: ['account'],
      registers,
    }),
    stormAlerts: new Counter({
      name: 'lms_storm_alerts_total',
      help: 'Login storm alerts raised, by account.',
      labelNames: ['account'],
      registers,
    }),
    httpResponses: new Counter({
      name: 'lms_http_responses_total',
      help: 'HTTP responses by matched route pattern and status.',
      labelNames: ['route', 'status'],
      registers,
    }),
    queueLength: new Gauge({
      name: 'lms_queue_length',
      help: 'Submissions waiting to be pulled (pending, or pulled with an expired lock), by queue.',
      labelNames: ['queue'],
      registers,
      collect() {
        this.reset();
        const lengths = queueLengths();
        for (const { queue, length } of lengths) this.set({ queue }, length);
        live.sampleQueues(lengths);
      },
    }),
    submissionsCreated: new Counter({
      name: 'lms_submissions_created_total',
      help: 'Submissions created by students, by queue.',
      labelNames: ['queue'],
      registers,
    }),
    submissionsGraded: new Counter({
      name: 'lms_submissions_graded_total',
      help: 'Submissions graded (first accepted result), by queue.',
      labelNames: ['queue'],
      registers,
    }),
    gradingLatency: new Histogram({
      name: 'lms_grading_latency_seconds',
      help: 'Seconds from submission to its accepted result.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
  };
}

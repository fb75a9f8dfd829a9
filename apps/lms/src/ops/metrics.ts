import { findExemption, type PolicySettings, type PolicyUser } from '@storm-lab/session-policy';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { XQUEUE_GROUP } from '../users.ts';
import type { LiveStats } from './live-stats.ts';

/**
 * The `account` label value that counts every person (student, staff) together. Parentheses
 * cannot occur in a Django username (letters, digits and `@.+-_`), so no account is mistaken
 * for it.
 */
export const PEOPLE_ACCOUNT = '(people)';

/**
 * Which `account` label a login, eviction or storm alert is counted under. Service accounts
 * keep a series of their own: the storm runner and operators watch them. People share one
 * series, so /metrics neither lists who logged in nor grows by a series per user.
 */
export interface AccountLabels {
  /**
   * The username of a service account, else {@link PEOPLE_ACCOUNT}. A service account is a
   * member of the `xqueue` group, an account exempt by the current policy
   * (SINGLE_LOGIN_EXEMPT_USERNAMES / _GROUPS, or staff's overrides), or one the storm detector
   * has alerted on.
   */
  of(user: PolicyUser): string;
  /** Records a storm alert on `account`, counted under its name from now on; returns the name. */
  alerted(account: string): string;
}

/**
 * Creates the account labeller. `policy` is read on every call, so an exemption staff add at
 * run time names the account from its next login on.
 *
 * @example
 * const accounts = createAccountLabels(() => policyStore.current());
 * accounts.of({ username: 'student1', groups: [] }); // '(people)'
 * accounts.of({ username: 'xqueue_svc', groups: ['xqueue'] }); // 'xqueue_svc'
 */
export function createAccountLabels(policy: () => PolicySettings): AccountLabels {
  // Grows by one name per account the detector alerted on: a storm takes an account's valid
  // credentials and evictions above the threshold, so this stays small.
  const alerted = new Set<string>();
  const isService = (user: PolicyUser) =>
    user.groups.includes(XQUEUE_GROUP) ||
    alerted.has(user.username) ||
    findExemption(policy(), user) !== null;
  return {
    of: (user) => (isService(user) ? user.username : PEOPLE_ACCOUNT),
    alerted(account) {
      alerted.add(account);
      return account;
    },
  };
}

/** The LMS's Prometheus metrics; names are read by the storm runner, keep them stable. */
export interface LmsMetrics {
  registry: Registry;
  /** The `account` label of `logins`, `sessionsEvicted` and `stormAlerts`: always go through it. */
  accounts: AccountLabels;
  logins: Counter<'account' | 'path'>;
  loginFailures: Counter<'path'>;
  /** Password checks run (each one PBKDF2 at the configured count), refused attempts not. */
  passwordChecks: Counter<'path'>;
  sessionsEvicted: Counter<'account'>;
  /** Sessions a dry run would have ended (none was). */
  dryRunEvictions: Counter<'account'>;
  stormAlerts: Counter<'account'>;
  httpResponses: Counter<'route' | 'status'>;
  queueLength: Gauge<'queue'>;
  submissionsCreated: Counter<'queue'>;
  submissionsGraded: Counter<'queue'>;
  gradingLatency: Histogram<string>;
  /** Seconds a login spends in the session store's admission (register, decide, evict). */
  admissionLatency: Histogram<string>;
  /** Per-second counters for the dashboard: bump them where the metrics above are bumped. */
  live: LiveStats;
}

/**
 * Creates the metrics on a registry of their own, so tests can build many apps.
 * `queueLengths` is called at scrape time; the scrape also samples them into `live`.
 * `policy` is the current session policy, for {@link AccountLabels}.
 *
 * @example
 * const metrics = createMetrics(
 *   () => [{ queue: 'test-queue', length: 3 }], createLiveStats({ now }), policyStore.current,
 * );
 * await metrics.registry.metrics();
 */
export function createMetrics(
  queueLengths: () => { queue: string; length: number }[],
  live: LiveStats,
  policy: () => PolicySettings,
): LmsMetrics {
  const registry = new Registry();
  const registers = [registry];
  // Each process that serves says 1; under LMS_WORKERS the primary sums the workers it asks,
  // those that announced they listen (prom-client's cluster aggregation sums gauges).
  new Gauge({
    name: 'lms_workers_serving',
    help: 'LMS processes accepting requests: 1, or under LMS_WORKERS the workers that listen.',
    registers,
  }).set(1);
  return {
    registry,
    accounts: createAccountLabels(policy),
    live,
    logins: new Counter({
      name: 'lms_logins_total',
      help: `Successful logins by account (people as ${PEOPLE_ACCOUNT}) and path (xqueue or web).`,
      labelNames: ['account', 'path'],
      registers,
    }),
    loginFailures: new Counter({
      name: 'lms_login_failures_total',
      help: 'Failed logins (bad credentials, denied by the session limit) by path.',
      labelNames: ['path'],
      registers,
    }),
    passwordChecks: new Counter({
      name: 'lms_password_checks_total',
      help:
        'Password checks run, right or wrong (each costs one PBKDF2 at PASSWORD_HASH_ITERATIONS; ' +
        'an attempt the login throttle refuses runs none), by path.',
      labelNames: ['path'],
      registers,
    }),
    sessionsEvicted: new Counter({
      name: 'lms_sessions_evicted_total',
      help:
        'Sessions ended by the single-login policy (dry run not counted), ' +
        `by account (people as ${PEOPLE_ACCOUNT}).`,
      labelNames: ['account'],
      registers,
    }),
    dryRunEvictions: new Counter({
      name: 'lms_dry_run_evictions_total',
      help:
        'Sessions the single-login policy would have ended under SINGLE_LOGIN_DRY_RUN (none ' +
        `was), by account (people as ${PEOPLE_ACCOUNT}).`,
      labelNames: ['account'],
      registers,
    }),
    stormAlerts: new Counter({
      name: 'lms_storm_alerts_total',
      help: 'Login storm alerts raised, by account (an alerted account is named from then on).',
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
      // Every worker reads the same database: LMS_WORKERS > 1 shows one worker's, not the sum.
      aggregator: 'first',
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
    admissionLatency: new Histogram({
      name: 'lms_session_admission_seconds',
      help:
        "Seconds a successful password check spends in the session store's admission " +
        '(register the session, decide, end the evicted ones), whatever the outcome.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}

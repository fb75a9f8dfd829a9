import { startLms, startWatchers, useRedis } from '@storm-lab/harness';
import { percentile, perHour, type ScenarioFigures, type Series, verdictOf } from './figures.ts';
import { type Counters, readCounters, since } from './sampler.ts';
import type { Scenario } from './scenarios.ts';
import { type Outcome, StudentLoad } from './student-load.ts';
import { WebClient } from './web-client.ts';

/** The fleet and the load, the same for every scenario of one run. */
export interface RunSettings {
  replicas: number;
  queues: number;
  connections: number;
  durationSeconds: number;
  submissions: number;
  students: number;
  /** Production seconds per run second; poll intervals and hashing are divided by it. */
  compression: number;
  /** Longest wait after the load for submissions still being graded. */
  drainSeconds: number;
  /** Use this Redis instead of starting a private one. */
  redisUrl?: string | undefined;
  serviceUsername: string;
  servicePassword: string;
  studentPassword: string;
}

/** Live numbers, reported about once a second. */
export interface Progress {
  scenario: string;
  elapsedSeconds: number;
  phase: 'starting' | 'load' | 'drain' | 'done';
  counters: Counters;
  submitted: number;
  graded: number;
}

/** Everything a scenario started, so that an interrupt can stop it. */
export interface Cleanup {
  add(stop: () => Promise<void>): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ZERO: Counters = { logins: 0, forbidden: 0, graded: 0, evictions: 0, stormAlerts: 0 };
/** Django 5.2's default; divided by the compression so login CPU is compressed like time. */
const PRODUCTION_HASH_ITERATIONS = 1_000_000;

export function queueNames(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `queue-${index + 1}`);
}

/** The seed's right answer for a problem (see apps/lms seed). */
export function answerFor(_queue: string, problem: string): string {
  return `answer-${problem}`;
}

export function lmsEnv(settings: RunSettings, scenario: Scenario): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    PASSWORD_HASH_ITERATIONS: String(Math.round(PRODUCTION_HASH_ITERATIONS / settings.compression)),
    XQUEUE_LOCK_SECONDS: String(Math.max(1, 300 / settings.compression)),
    ...scenario.lms,
  };
}

export function watcherEnv(
  settings: RunSettings,
  scenario: Scenario,
  lmsUrl: string,
  redisUrl: string,
  prefix: string,
) {
  return {
    LOG_LEVEL: 'warn',
    LMS_URL: lmsUrl,
    REDIS_URL: redisUrl,
    XQUEUE_USERNAME: settings.serviceUsername,
    XQUEUE_PASSWORD: settings.servicePassword,
    WATCHER_QUEUES: queueNames(settings.queues).join(','),
    WATCHER_CONNECTIONS: String(settings.connections),
    WATCHER_POLL_INTERVAL: String(1 / settings.compression),
    WATCHER_LOGIN_POLL_INTERVAL: String(5 / settings.compression),
    // A timeout is a bound, not a cadence: compressing it would only add failures.
    WATCHER_REQUESTS_TIMEOUT: '5',
    WATCHER_QUEUE_PREFIX: prefix,
    WATCHER_METRICS_PORT: '0',
    WATCHER_JOB_LOCK_MS: '5000',
    ...scenario.watcher,
  };
}

/** Logs in the run's students (`student1..N`) and returns the load that submits for them. */
export async function studentLoad(
  lmsUrl: string,
  settings: RunSettings,
  queues: readonly string[],
) {
  const load = new StudentLoad({
    lmsUrl,
    queues,
    students: settings.students,
    studentPassword: settings.studentPassword,
    answerFor,
  });
  await load.logIn();
  return load;
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

/** A student logs in twice; single-session holds when the first session is gone. */
async function checkPersonSingleSession(lmsUrl: string, username: string, password: string) {
  const first = new WebClient(lmsUrl);
  const second = new WebClient(lmsUrl);
  await first.login(username, password);
  await second.login(username, password);
  return !(await first.isLoggedIn()) && (await second.isLoggedIn());
}

async function collectOutcomes(
  load: StudentLoad,
  deadline: number,
  onRound: (graded: number) => void,
) {
  const outcomes = new Map<number, Outcome>();
  for (;;) {
    const pending = load.submitted.filter((submission) => !outcomes.get(submission.id)?.graded);
    const results = await Promise.all(pending.map((submission) => load.outcome(submission)));
    pending.forEach((submission, index) => {
      outcomes.set(submission.id, results[index] as Outcome);
    });
    const graded = [...outcomes.values()].filter((outcome) => outcome.graded).length;
    onRound(graded);
    if (graded === load.submitted.length || Date.now() >= deadline) return outcomes;
    await sleep(100);
  }
}

/**
 * Runs one scenario end to end with real processes: Redis, a freshly seeded LMS, the watcher
 * fleet and the student load; samples the LMS metrics every second; stops everything.
 */
export async function runScenario(
  scenario: Scenario,
  settings: RunSettings,
  cleanup: Cleanup,
  onProgress: (progress: Progress) => void,
): Promise<ScenarioFigures> {
  const queues = queueNames(settings.queues);
  const totalConnections = settings.replicas * settings.queues * settings.connections;
  const report = (progress: Omit<Progress, 'scenario'>) =>
    onProgress({ scenario: scenario.name, ...progress });
  report({ elapsedSeconds: 0, phase: 'starting', counters: ZERO, submitted: 0, graded: 0 });

  const redis = await useRedis(settings.redisUrl);
  cleanup.add(() => redis.stop());
  const redisUrl = redis.url;
  const lms = await startLms({
    env: lmsEnv(settings, scenario),
    // One more student than the load uses: the single-session check logs it in twice.
    seed: seedArgs(settings, queues, settings.students + 1),
  });
  cleanup.add(() => lms.stop());
  // Taken before the fleet starts, so the fleet's first logins count: a healthy fleet makes one per connection.
  const base = await readCounters(lms.url, settings.serviceUsername);
  const prefix = `storm-${process.pid}-${scenario.name}`;
  const fleet = await startWatchers({
    replicas: settings.replicas,
    env: watcherEnv(settings, scenario, lms.url, redisUrl, prefix),
  });
  cleanup.add(() => fleet.stopAll());

  const load = await studentLoad(lms.url, settings, queues);
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const series: Series = { seconds: [], logins: [], forbidden: [], graded: [] };
  let last = ZERO;
  let phase: Progress['phase'] = 'load';
  let gradedSoFar = 0;
  const sample = async () => {
    const now = since(await readCounters(lms.url, settings.serviceUsername), base);
    series.seconds.push(Math.round(elapsed()));
    series.logins.push(now.logins - last.logins);
    series.forbidden.push(now.forbidden - last.forbidden);
    series.graded.push(now.graded - last.graded);
    last = now;
    report({
      elapsedSeconds: elapsed(),
      phase,
      counters: now,
      submitted: load.submitted.length,
      graded: now.graded,
    });
  };
  const sampler = setInterval(() => void sample().catch(() => undefined), 1000);

  try {
    const intervalMs = (settings.durationSeconds * 1000) / Math.max(1, settings.submissions);
    for (let index = 0; index < settings.submissions; index++) {
      const due = started + index * intervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
      await load.submit(index);
    }
    const enforcing = scenario.lms.PREVENT_CONCURRENT_LOGINS !== 'false';
    const person = enforcing
      ? await checkPersonSingleSession(
          lms.url,
          `student${settings.students + 1}`,
          settings.studentPassword,
        )
      : null;
    const loadEnd = started + settings.durationSeconds * 1000;
    if (loadEnd > Date.now()) await sleep(loadEnd - Date.now());
    phase = 'drain';
    const outcomes = await collectOutcomes(
      load,
      Date.now() + settings.drainSeconds * 1000,
      (graded) => {
        gradedSoFar = graded;
      },
    );
    clearInterval(sampler);
    await sample();
    phase = 'done';
    const durationSeconds = elapsed();
    const graded = [...outcomes.values()].filter((outcome) => outcome.graded);
    const latencies = graded.flatMap((outcome) =>
      outcome.latencyMs === null ? [] : [outcome.latencyMs],
    );
    const wrongScores = load.submitted.filter((submission) => {
      const outcome = outcomes.get(submission.id);
      return outcome?.graded && outcome.correct !== submission.expectCorrect;
    }).length;
    report({
      elapsedSeconds: durationSeconds,
      phase,
      counters: last,
      submitted: load.submitted.length,
      graded: gradedSoFar,
    });
    return {
      name: scenario.name,
      description: scenario.description,
      replicas: settings.replicas,
      queues: settings.queues,
      connections: settings.connections,
      totalConnections,
      durationSeconds: Math.round(durationSeconds * 10) / 10,
      logins: last.logins,
      // Each connection's first login is the fleet starting, not a rate: only re-logins count.
      loginsPerHour: perHour(
        Math.max(0, last.logins - totalConnections),
        durationSeconds,
        settings.compression,
      ),
      forbidden: last.forbidden,
      forbiddenPerLogin: last.logins > 0 ? last.forbidden / last.logins : 0,
      graded: graded.length,
      submitted: load.submitted.length,
      wrongScores,
      evictions: last.evictions,
      stormAlerts: last.stormAlerts,
      latencyP50Ms: percentile(latencies, 50),
      latencyP95Ms: percentile(latencies, 95),
      personSingleSession: person,
      verdict: verdictOf(last.logins, last.forbidden, totalConnections),
      series,
    };
  } finally {
    clearInterval(sampler);
  }
}

import {
  type LmsConfig,
  openDatabase,
  parseEnv as parseLmsEnv,
  SEED_DEFAULTS,
  seed,
} from '@storm-lab/lms';
import {
  answerFor,
  type Counters,
  checkPersonSingleSession,
  drain,
  figuresOf,
  percentile,
  readCounters,
  type Sample,
  type Scenario,
  type ScenarioFigures,
  StudentLoad,
  since,
} from '@storm-lab/storm';
import { loadConfig, parseEnv as parseWatcherEnv, type WatcherMode } from '@storm-lab/watcher';
import { pino } from 'pino';
import { SimFleet } from './fleet.ts';
import { freeHash, type LmsFaults, SimLms } from './lms-host.ts';
import { timingNoise } from './noise.ts';
import { seededRandom } from './random.ts';
import { type SimSettings, submissionTimes } from './settings.ts';
import { drive, sleep, withVirtualClock } from './virtual-clock.ts';

export const SERVICE_USERNAME = 'xqueue_svc';
const SERVICE_PASSWORD = 'xqueue-pass';
const STUDENT_PASSWORD = 'student-pass';
const STUDENT_TIMEOUT_MS = 60_000;

/** What a fault run does to the world while it runs (see faults.ts). */
export interface WorldHooks {
  /** Called once the fleet is running; may kill replicas, restart the LMS, set faults. */
  during?(world: World): Promise<void>;
  /** Count each submission's pulls served and results accepted at the LMS (`SimLms.door`). */
  audit?: boolean;
  /** Called after the drain, before the world is taken down. */
  atEnd?(
    world: World,
    /** Per submission: accepted results by `jobId poster` (the poster: a connection, or `job`). */
    seen: { acceptedResults: ReadonlyMap<number, ReadonlyMap<string, number>> },
  ): void;
}

/** The parts of a running world a fault schedule may touch. */
export interface World {
  lms: SimLms;
  fleet: SimFleet;
  faults: LmsFaults;
  database: ReturnType<typeof openDatabase>;
  settings: SimSettings;
}

/**
 * The names each conf.d entry watches, the queues the LMS has (one per name), and those the
 * students submit to.
 */
export function queueNamesOf(
  settings: Pick<SimSettings, 'queues' | 'sameQueue' | 'studentQueues'>,
) {
  const entries = Array.from({ length: settings.queues }, (_, index) =>
    settings.sameQueue ? 'queue-1' : `queue-${index + 1}`,
  );
  const queues = [...new Set(entries)];
  return {
    entries,
    queues,
    submittedTo: settings.studentQueues === 'first' ? [queues[0]!] : queues,
  };
}

function lmsConfig(settings: SimSettings, scenario: Scenario): LmsConfig {
  return parseLmsEnv(
    {
      LOG_LEVEL: 'silent',
      PASSWORD_HASH_ITERATIONS: String(settings.iterations),
      XQUEUE_LOCK_SECONDS: String(settings.lockSeconds / settings.compression),
      // People browse from their own addresses behind the LMS's proxy (studentAddress).
      TRUST_PROXY: 'loopback',
      ...(!settings.loginThrottle && { LOGIN_THROTTLE_FAILURES: '0' }),
      ...scenario.lms,
    },
    process.cwd(),
  );
}

async function watcherConfig(settings: SimSettings, scenario: Scenario, lmsUrl: string) {
  const c = settings.compression;
  const env = parseWatcherEnv({
    LMS_URL: lmsUrl,
    REDIS_URL: 'redis://127.0.0.1:6379', // never connected: grading runs in the simulated replica
    XQUEUE_USERNAME: SERVICE_USERNAME,
    XQUEUE_PASSWORD: SERVICE_PASSWORD,
    // Entries of one queue (sameQueue) are one entry with their connections added: the same
    // clients, as upstream's Manager makes them for a queue repeated in conf.d.
    WATCHER_QUEUES: queueNamesOf(settings).queues.join(','),
    WATCHER_CONNECTIONS: String(
      settings.sameQueue ? settings.queues * settings.connections : settings.connections,
    ),
    WATCHER_MODE: 'current',
    XQWATCHER_POLL_INTERVAL: String(settings.pollIntervalSeconds / c),
    XQWATCHER_LOGIN_POLL_INTERVAL: String(settings.loginPollIntervalSeconds / c),
    XQWATCHER_REQUESTS_TIMEOUT: String(settings.requestsTimeoutSeconds / c),
    XQWATCHER_POLL_TIME: String(settings.pollTimeSeconds / c),
    WATCHER_DEFAULT_HANDLER: JSON.stringify({
      HANDLER: 'slow-flaky',
      KWARGS: { latency_ms: Math.round((settings.gradingSeconds * 1000) / c) },
    }),
    ...scenario.watcher,
  });
  return { env, config: await loadConfig(env) };
}

/**
 * Runs one scenario in the simulated world on a virtual clock: the LMS as `createApp` builds it
 * (in-memory SQLite, seeded as `pnpm storm` seeds it) behind simulated workers, the watcher
 * fleet's own clients and loops, and students submitting through the student API. Returns the
 * same figures `pnpm storm` reports, from the same counters.
 */
export async function simulateScenario(
  scenario: Scenario,
  settings: SimSettings,
  hooks: WorldHooks = {},
): Promise<ScenarioFigures> {
  return withVirtualClock((clock) => drive(clock, runWorld(scenario, settings, hooks)));
}

async function runWorld(
  scenario: Scenario,
  settings: SimSettings,
  hooks: WorldHooks,
): Promise<ScenarioFigures> {
  const random = seededRandom(settings.seed);
  // Its own streams: a run without noise draws exactly what it drew before noise existed.
  const noise = timingNoise(settings.noise, random);
  // Silent but for the watcher's event lines, which it prints at any level: counted, not kept.
  // A `result-accepted` line is a put_result the LMS answered with success: counted per
  // submission and pull key (the job id names both).
  const acceptedResults = new Map<number, Map<string, number>>();
  const onLine = (line: string) => {
    if (!line.includes('"event":"result-accepted"')) return;
    const id = Number(/"submissionId":(\d+)/.exec(line)?.[1]);
    // The pull key (in the job id) and who posted: a hardened job posts from no connection.
    const job = /"jobId":"([^"]+)"/.exec(line)?.[1] ?? '';
    const key = `${job} ${/"connection":"([^"]+)"/.exec(line)?.[1] ?? 'job'}`;
    const keys = acceptedResults.get(id) ?? new Map<string, number>();
    keys.set(key, (keys.get(key) ?? 0) + 1);
    acceptedResults.set(id, keys);
  };
  const logger = pino({ level: 'silent' });
  const { queues, submittedTo } = queueNamesOf(settings);
  const database = openDatabase({ path: ':memory:', synchronous: 'normal' });
  const config = lmsConfig(settings, scenario);
  await seed(
    database.db,
    {
      ...SEED_DEFAULTS,
      queues,
      students: settings.students + 1,
      serviceUsername: SERVICE_USERNAME,
      servicePassword: SERVICE_PASSWORD,
      studentPassword: STUDENT_PASSWORD,
    },
    { iterations: config.passwordHashIterations, now: Date.now(), hash: freeHash },
  );
  const faults: LmsFaults = { dropResponseRate: 0, hashSlowdown: 1 };
  const lms = new SimLms({
    database,
    config,
    costs: {
      model: settings.lmsModel,
      workers: settings.lmsWorkers,
      ...(settings.lmsThreads !== null && { threads: settings.lmsThreads }),
      // Costs are what the LMS's machine spends; a compressed run (--lab) compresses the
      // iteration count instead, as `pnpm storm` does.
      iterationNs: settings.iterationNs,
      requestMs: settings.requestMs,
      latencyMs: settings.latencyMs,
      latencyJitter: settings.latencyJitter,
    },
    faults,
    random: random.fork('network'),
    logger,
    audit: hooks.audit ?? false,
    runQueue: noise.runQueue,
    roundTripMs: noise.roundTripMs,
  });
  // Summed over the LMS's incarnations, as a Prometheus counter's increase survives a restart.
  const read = async (): Promise<Counters> => {
    const each = await Promise.all(
      (await lms.metrics()).map((text) =>
        readCounters(lms.baseUrl, SERVICE_USERNAME, undefined, async () => new Response(text)),
      ),
    );
    const [first, ...rest] = each as [Counters, ...Counters[]];
    const sum = { ...first };
    for (const counters of rest) {
      for (const key of Object.keys(sum) as (keyof Counters)[]) sum[key] += counters[key];
    }
    return sum;
  };
  const base = await read();

  // Students log in first, on a quiet LMS, as in `pnpm storm`; each request's wait is timed.
  // Students' requests while the load runs (not their logins before it, nor the reads after).
  const studentLatencies: number[] = [];
  let recordStudents = false;
  const studentFetch = lms.fetchFor({ address: '127.0.0.1' });
  const load = new StudentLoad({
    lmsUrl: lms.baseUrl,
    queues: submittedTo,
    students: settings.students,
    studentPassword: STUDENT_PASSWORD,
    answerFor,
    fetch: async (url, init) => {
      const started = Date.now();
      // A browser behind a proxy gives up too: a lost answer is an error after a minute.
      const signal = new AbortController();
      const timer = setTimeout(() => signal.abort(new Error('no answer')), STUDENT_TIMEOUT_MS);
      try {
        return await studentFetch(url, { ...init, signal: signal.signal });
      } finally {
        clearTimeout(timer);
        if (recordStudents) studentLatencies.push(Date.now() - started);
      }
    },
  });
  await load.logIn();

  const { config: watcher, env: watcherEnv } = await watcherConfig(settings, scenario, lms.baseUrl);
  const c = settings.compression;
  const fleet = new SimFleet({
    lms,
    config: watcher,
    mode: watcherEnv.WATCHER_MODE as WatcherMode,
    replicas: settings.replicas,
    supervise: {
      backoffBaseMs: (settings.restartBackoffBaseSeconds * 1000) / c,
      backoffMaxMs: (settings.restartBackoffMaxSeconds * 1000) / c,
    },
    startupMs: (settings.replicaStartupSeconds * 1000) / c,
    jobLockMs: watcherEnv.WATCHER_JOB_LOCK_MS,
    concurrency: watcherEnv.WATCHER_CONCURRENCY,
    oneByOne: settings.oneByOne,
    random: random.fork('fleet'),
    noise,
    onLine,
  });

  await fleet.ready;
  const loadStarted = Date.now();
  recordStudents = true;
  const elapsed = () => (Date.now() - loadStarted) / 1000;
  const samples: Sample[] = [];
  const busyAtStart = lms.workerStats.busyMs;
  let last: Counters = since(base, base);
  let failedSubmissions = 0;
  const sample = async () => {
    const counts = await fleet.counts();
    last = since(await read(), base);
    samples.push({
      t: Math.round(elapsed() * 1000) / 1000,
      ...last,
      alive: counts.alive,
      restarts: counts.restarts,
      waiting: Math.max(0, load.submitted.length - last.graded),
    });
  };
  const totalSeconds = settings.durationSeconds + settings.drainSeconds;
  const sampleEveryMs = Math.max(250, (totalSeconds * 1000) / c / 720);
  const stopSampling = new AbortController();
  const sampling = (async () => {
    while (!stopSampling.signal.aborted) {
      await sample();
      await sleep(sampleEveryMs, stopSampling.signal);
    }
  })();

  const times = submissionTimes(settings.load, settings.durationSeconds / c, random.fork('load'));
  const submissions = times.map(async (at, index) => {
    await sleep(at * 1000);
    await load.submit(index).catch(() => {
      failedSubmissions += 1;
    });
  });
  const during = hooks.during?.({ lms, fleet, faults, database, settings });
  const loadEnd = loadStarted + (settings.durationSeconds * 1000) / c;
  await Promise.all(submissions);
  // A fault schedule ends before the person's check (which is not about faults).
  await during;
  recordStudents = false;
  // As `pnpm storm` drives its load: once the last submission is made, one more person logs in
  // twice, then the rest of the load's time.
  const enforcing = scenario.lms.PREVENT_CONCURRENT_LOGINS !== 'false';
  const person = enforcing
    ? await checkPersonSingleSession(
        lms.baseUrl,
        `student${settings.students + 1}`,
        STUDENT_PASSWORD,
        settings.students + 1,
        studentFetch,
      )
    : null;
  await sleep(loadEnd - Date.now());
  // `pnpm storm`'s drain; with `once-graded`, the students ask only once the LMS's own count says
  // every submission is graded (it may also count one whose answer a student never got, so they
  // still ask about theirs).
  await drain(
    load,
    settings.drainSeconds / c,
    settings.drainAsks === 'once-graded'
      ? {
          askWhen: async () => {
            last = since(await read(), base);
            return last.graded >= load.submitted.length;
          },
        }
      : {},
  );
  stopSampling.abort();
  await sampling;
  await sample();
  const durationSeconds = elapsed();
  const busyMs = lms.workerStats.busyMs - busyAtStart;
  const counts = await fleet.counts();
  fleet.stop();
  const outcomes = new Map(
    await Promise.all(
      load.submitted.map(
        async (submission) => [submission.id, await load.outcome(submission)] as const,
      ),
    ),
  );
  const figures = figuresOf(
    scenario,
    {
      replicas: settings.replicas,
      queues: settings.queues,
      connections: settings.connections,
      compression: c,
    },
    {
      counters: last,
      outcomes,
      load,
      durationSeconds,
      person,
      fleet: {
        restarts: counts.restarts,
        events: {
          'connection-died': counts.connectionDeaths,
          'login-timeout': counts.loginTimeouts,
        },
      },
      deaths: counts.deathReasons,
      samples,
    },
  );
  hooks.atEnd?.({ lms, fleet, faults, database, settings }, { acceptedResults });
  database.close();
  return {
    ...figures,
    lmsWorkerUtilisation: busyMs / (settings.lmsWorkers * durationSeconds * 1000),
    studentLatencyP50Ms: scaled(percentile(studentLatencies, 50), c),
    studentLatencyP95Ms: scaled(percentile(studentLatencies, 95), c),
    ...(failedSubmissions > 0 && {
      description: `${figures.description} (${failedSubmissions} submissions refused)`,
    }),
  };
}

function scaled(ms: number | null, compression: number): number | null {
  return ms === null ? null : Math.round(ms * compression);
}

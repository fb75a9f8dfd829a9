import { setTimeout as delay } from 'node:timers/promises';
import { startLms, startWatchers, useRedis, type WatcherFleet } from '@storm-lab/harness';
import { WebClient, type WebClientOptions } from '@storm-lab/lms-client';
import { percentile, perHour, perMinute, type ScenarioFigures, verdictOf } from './figures.ts';
import { type Counters, readConnectionsAlive, readCounters, since } from './sampler.ts';
import { perSecond, type Sample } from './samples.ts';
import type { Scenario } from './scenarios.ts';
import {
  lmsEnv,
  oneByOne,
  queueNames,
  type RunSettings,
  restartBackoff,
  seedArgs,
  studentAddress,
  studentLoad,
  watcherEnv,
} from './settings.ts';
import type { Outcome, StudentLoad } from './student-load.ts';

/** Live numbers, reported at every sample (about four times a second). */
export interface Progress {
  scenario: string;
  elapsedSeconds: number;
  phase: 'starting' | 'load' | 'drain' | 'done';
  counters: Counters;
  submitted: number;
  graded: number;
  /** Replicas restarted by the supervisor so far. */
  restarts: number;
  connectionDeaths: number;
}

/** Everything a scenario started, so that an interrupt can stop it. */
export interface Cleanup {
  add(stop: () => Promise<void>): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Four samples per run second: fine enough for a 6 s run's charts to show its shape. */
const SAMPLE_EVERY_MS = 250;
const ZERO: Counters = { logins: 0, forbidden: 0, graded: 0, evictions: 0, stormAlerts: 0 };

/**
 * A student logs in twice; single-session holds when the first session is gone. The student
 * shares the fleet's address (loopback), whose logins in flight a storm can keep above the
 * throttle's budget: a 429 is tried again after its Retry-After, as a person would.
 */
export async function checkPersonSingleSession(
  lmsUrl: string,
  username: string,
  password: string,
  person: number,
  send?: WebClientOptions['fetch'],
) {
  // One person on two browsers of one machine.
  const address = { forwardedFor: studentAddress(person), ...(send && { fetch: send }) };
  const first = new WebClient(lmsUrl, address);
  const second = new WebClient(lmsUrl, address);
  const patience = { retryForMs: 10_000 };
  await first.login(username, password, patience);
  await second.login(username, password, patience);
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

/** What a finished run saw, from the LMS, the students and the fleet. */
export interface RunOutcome {
  counters: Counters;
  outcomes: Map<number, Outcome>;
  load: StudentLoad;
  durationSeconds: number;
  person: boolean | null;
  fleet: Pick<WatcherFleet, 'restarts'> & { events: Record<string, number> };
  /** Why each connection died, as its replica said, with when. */
  deaths: string[];
  samples: Sample[];
}

/** The report's figures of one finished run (the lab's and the simulator's alike). */
export function figuresOf(
  scenario: Scenario,
  settings: Pick<RunSettings, 'replicas' | 'queues' | 'connections' | 'compression'>,
  run: RunOutcome,
): ScenarioFigures {
  const { counters, outcomes, load, durationSeconds } = run;
  const totalConnections = settings.replicas * settings.queues * settings.connections;
  const graded = [...outcomes.values()].filter((outcome) => outcome.graded);
  const latencies = graded.flatMap((outcome) =>
    outcome.latencyMs === null ? [] : [outcome.latencyMs],
  );
  const wrongScores = load.submitted.filter((submission) => {
    const outcome = outcomes.get(submission.id);
    return outcome?.graded && outcome.correct !== submission.expectCorrect;
  }).length;
  const submitted = load.submitted.length;
  return {
    name: scenario.name,
    description: scenario.description,
    lms: scenario.lms,
    watcher: scenario.watcher,
    replicas: settings.replicas,
    queues: settings.queues,
    connections: settings.connections,
    totalConnections,
    durationSeconds: Math.round(durationSeconds * 10) / 10,
    logins: counters.logins,
    // Each connection's first login is the fleet starting, not a rate: only re-logins count.
    loginsPerHour: perHour(
      Math.max(0, counters.logins - totalConnections),
      durationSeconds,
      settings.compression,
    ),
    forbidden: counters.forbidden,
    forbiddenPerLogin: counters.logins > 0 ? counters.forbidden / counters.logins : 0,
    graded: graded.length,
    submitted,
    waitingAtEnd: submitted - graded.length,
    gradedPerMinute: perMinute(graded.length, durationSeconds, settings.compression),
    wrongScores,
    evictions: counters.evictions,
    stormAlerts: counters.stormAlerts,
    connectionDeaths: run.fleet.events['connection-died'] ?? 0,
    connectionDeathReasons: run.deaths,
    replicaRestarts: run.fleet.restarts,
    loginTimeouts: run.fleet.events['login-timeout'] ?? 0,
    latencyP50Ms: percentile(latencies, 50),
    latencyP95Ms: percentile(latencies, 95),
    personSingleSession: run.person,
    verdict: verdictOf({
      logins: counters.logins,
      forbidden: counters.forbidden,
      totalConnections,
      graded: graded.length,
      submitted,
    }),
    series: perSecond(run.samples),
    samples: run.samples,
  };
}

/**
 * Runs one scenario end to end with real processes: Redis, a freshly seeded LMS, the watcher
 * fleet (supervised: a replica that exits is restarted, as in production) and the student
 * load; samples the LMS's and the replicas' metrics four times a second; stops everything.
 */
export async function runScenario(
  scenario: Scenario,
  settings: RunSettings,
  cleanup: Cleanup,
  onProgress: (progress: Progress) => void,
): Promise<ScenarioFigures> {
  const queues = queueNames(settings.queues);
  let fleet: WatcherFleet | undefined;
  const report = (progress: Omit<Progress, 'scenario' | 'restarts' | 'connectionDeaths'>) =>
    onProgress({
      scenario: scenario.name,
      restarts: fleet?.restarts ?? 0,
      connectionDeaths: fleet?.events['connection-died'] ?? 0,
      ...progress,
    });
  report({ elapsedSeconds: 0, phase: 'starting', counters: ZERO, submitted: 0, graded: 0 });

  const redis = await useRedis(settings.redisUrl);
  cleanup.add(() => redis.stop());
  const prefix = `storm-${process.pid}-${scenario.name}`;
  const lms = await startLms({
    env: lmsEnv(settings, scenario, { url: redis.url, sessionPrefix: `${prefix}:lms:` }),
    // One more student than the load uses: the single-session check logs it in twice.
    seed: seedArgs(settings, queues, settings.students + 1),
  });
  cleanup.add(() => lms.stop());
  // Taken before the fleet starts, so the fleet's first logins count: a healthy fleet makes one per connection.
  const base = await readCounters(lms.url, settings.serviceUsername);
  // Students log in first, on a warm LMS: their logins must not share the fleet's first burst.
  const load = await studentLoad(lms.url, settings, queues);
  const fleetStarted = Date.now();
  const deaths: string[] = [];
  const started = await startWatchers({
    replicas: settings.replicas,
    env: watcherEnv(settings, scenario, lms.url, redis.url, prefix),
    onEvent: ({ event, replicaId, atMs, fields }) => {
      if (event !== 'connection-died') return;
      const at = ((atMs - fleetStarted) / 1000).toFixed(2);
      deaths.push(`replica ${replicaId} at ${at} s after the fleet started: ${fields.reason}`);
    },
    supervise: restartBackoff(settings),
    // Replicas come up one after another, as a deployment's pods do.
    oneByOne: oneByOne(settings),
  });
  fleet = started;
  cleanup.add(() => started.stopAll());

  const loadStarted = Date.now();
  const elapsed = () => (Date.now() - loadStarted) / 1000;
  const samples: Sample[] = [];
  let last = ZERO;
  let phase: Progress['phase'] = 'load';
  let gradedSoFar = 0;
  const sample = async () => {
    const [counters, alive] = await Promise.all([
      readCounters(lms.url, settings.serviceUsername),
      readConnectionsAlive(started.metricsUrls),
    ]);
    const now = since(counters, base);
    const t = Math.round(elapsed() * 1000) / 1000;
    const waiting = Math.max(0, load.submitted.length - now.graded);
    samples.push({ t, ...now, alive, restarts: started.restarts, waiting });
    last = now;
    report({
      elapsedSeconds: elapsed(),
      phase,
      counters: now,
      submitted: load.submitted.length,
      graded: now.graded,
    });
  };
  // One sample after another, each started SAMPLE_EVERY_MS after the previous one started (or
  // at once when a read took longer, as it may on an LMS busy hashing a storm's logins).
  const stopSampling = new AbortController();
  const sampling = (async () => {
    while (!stopSampling.signal.aborted) {
      const next = Date.now() + SAMPLE_EVERY_MS;
      await sample().catch(() => undefined);
      await delay(Math.max(0, next - Date.now()), undefined, {
        signal: stopSampling.signal,
      }).catch(() => undefined);
    }
  })();
  const endSampling = async () => {
    stopSampling.abort();
    await sampling;
  };

  try {
    const intervalMs = (settings.durationSeconds * 1000) / Math.max(1, settings.submissions);
    for (let index = 0; index < settings.submissions; index++) {
      const due = loadStarted + index * intervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
      await load.submit(index);
    }
    const enforcing = scenario.lms.PREVENT_CONCURRENT_LOGINS !== 'false';
    const person = enforcing
      ? await checkPersonSingleSession(
          lms.url,
          `student${settings.students + 1}`,
          settings.studentPassword,
          settings.students + 1,
        )
      : null;
    const loadEnd = loadStarted + settings.durationSeconds * 1000;
    if (loadEnd > Date.now()) await sleep(loadEnd - Date.now());
    phase = 'drain';
    const outcomes = await collectOutcomes(
      load,
      Date.now() + settings.drainSeconds * 1000,
      (graded) => {
        gradedSoFar = graded;
      },
    );
    await endSampling();
    await sample();
    phase = 'done';
    const durationSeconds = elapsed();
    report({
      elapsedSeconds: durationSeconds,
      phase,
      counters: last,
      submitted: load.submitted.length,
      graded: gradedSoFar,
    });
    return figuresOf(scenario, settings, {
      counters: last,
      outcomes,
      load,
      durationSeconds,
      person,
      fleet: started,
      deaths,
      samples,
    });
  } finally {
    await endSampling();
  }
}

// The storm report's figures checked against counts the report does not read: logins and 403s
// against the watchers' own counters (every incarnation's `replica-counters` line), evictions
// against the LMS's session_ends rows, graded against the students' own view.
import {
  type LocalLms,
  type LocalRedis,
  startLms,
  startRedis,
  startWatchers,
  type WatcherEventLine,
  type WatcherFleet,
} from '@storm-lab/harness';
import { WebClient } from '@storm-lab/lms-client';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ScenarioFigures } from './figures.ts';
import { figuresOf, readCounters, since } from './index.ts';
import { oneByOne } from './scenario/start-stack.ts';
import { loadScenario, type Scenario } from './scenarios.ts';
import {
  lmsEnv,
  queueNames,
  type RunSettings,
  restartBackoff,
  seedArgs,
  studentAddress,
  watcherEnv,
} from './settings.ts';
import { type Outcome, type StudentLoad, studentLoad } from './student-load.ts';

// A short run: 2 replicas x 1 queue x 2 connections, 12 submissions over 3 s, at 20x.
const SETTINGS: RunSettings = {
  replicas: 2,
  queues: 1,
  connections: 2,
  durationSeconds: 3,
  submissions: 12,
  students: 3,
  compression: 20,
  gradingSeconds: 1,
  drainSeconds: 20,
  sessionStore: 'sqlite',
  lmsWorkers: 1,
  serviceUsername: 'xqueue_svc',
  servicePassword: 'svc-e2e-pass',
  studentPassword: 'student-e2e-pass',
};
const TOTAL_CONNECTIONS = SETTINGS.replicas * SETTINGS.queues * SETTINGS.connections;
// A request the watcher gives up on after the LMS counted it (a login whose answer came too
// late) is on one side only: a REQUESTS_TIMEOUT no answer reaches makes the two sides' counts
// comparable exactly. The storm (evict, 403, log in again) does not need timeouts.
const NO_TIMEOUTS = { XQWATCHER_REQUESTS_TIMEOUT: '60' };

interface Run {
  figures: ScenarioFigures;
  /** The replicas' `replica-counters` lines, one per incarnation. */
  incarnations: Record<string, unknown>[];
  lms: LocalLms;
  load: StudentLoad;
}

let stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  stops = [];
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One scenario through the storm package's own pieces (its settings, student load, LMS counters
 * and `figuresOf`, as `runScenario` uses them), with what the report cannot see kept for the
 * test: the LMS's database and the replicas' event lines. The figures are taken once the fleet
 * has stopped, so that both sides' counts are final.
 */
async function runAndCount(scenario: Scenario, restartMidRun: boolean): Promise<Run> {
  const queues = queueNames(SETTINGS.queues);
  const redis: LocalRedis = await startRedis();
  stops.push(() => redis.stop());
  const lms = await startLms({
    env: lmsEnv(SETTINGS, scenario),
    seed: seedArgs(SETTINGS, queues, SETTINGS.students + 1),
  });
  stops.push(() => lms.stop());
  const base = await readCounters(lms.url, SETTINGS.serviceUsername);
  const load = await studentLoad(lms.url, SETTINGS, queues);
  const lines: WatcherEventLine[] = [];
  const fleet: WatcherFleet = await startWatchers({
    replicas: SETTINGS.replicas,
    env: watcherEnv(SETTINGS, scenario, lms.url, redis.url, `e2e-${process.pid}-${scenario.name}`),
    onEvent: (line) => lines.push(line),
    supervise: restartBackoff(SETTINGS),
    oneByOne: oneByOne(SETTINGS),
  });
  stops.push(() => fleet.stopAll('SIGKILL'));

  const started = Date.now();
  const intervalMs = (SETTINGS.durationSeconds * 1000) / SETTINGS.submissions;
  for (let index = 0; index < SETTINGS.submissions; index++) {
    const due = started + index * intervalMs;
    if (due > Date.now()) await sleep(due - Date.now());
    await load.submit(index);
    // A second incarnation of replica 2: its first one's counters are gone with its metrics.
    if (restartMidRun && index === SETTINGS.submissions / 2) await fleet.restart(1);
  }
  const deadline = Date.now() + SETTINGS.drainSeconds * 1000;
  let outcomes = await outcomesOf(load);
  while (countGraded(outcomes) < load.submitted.length && Date.now() < deadline) {
    await sleep(200);
    outcomes = await outcomesOf(load);
  }
  await fleet.stopAll('SIGTERM');
  outcomes = await outcomesOf(load);
  const counters = since(await readCounters(lms.url, SETTINGS.serviceUsername), base);
  const figures = figuresOf(scenario, SETTINGS, {
    counters,
    outcomes,
    load,
    durationSeconds: (Date.now() - started) / 1000,
    person: null,
    fleet: { restarts: fleet.restarts, events: { ...fleet.events } },
    deaths: [],
    samples: [],
  });
  const incarnations = lines
    .filter((line) => line.event === 'replica-counters')
    .map((line) => ({ pid: line.pid, ...line.fields }));
  return { figures, incarnations, lms, load };
}

async function outcomesOf(load: StudentLoad): Promise<Map<number, Outcome>> {
  const results = await Promise.all(load.submitted.map((one) => load.outcome(one)));
  return new Map(load.submitted.map((one, index) => [one.id, results[index] as Outcome]));
}

const countGraded = (outcomes: Map<number, Outcome>) =>
  [...outcomes.values()].filter((outcome) => outcome.graded).length;

const sumOf = (incarnations: readonly Record<string, unknown>[], field: string) =>
  incarnations.reduce((sum, one) => sum + Number(one[field]), 0);

/** The service account's sessions the LMS recorded as ended by eviction, from its file. */
function evictedRows(lms: LocalLms): number {
  const db = new Database(lms.databasePath, { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare(
        `SELECT count(*) AS n FROM session_ends JOIN users ON users.id = session_ends.user_id
          WHERE session_ends.reason = 'evicted' AND users.username = ?`,
      )
      .get(SETTINGS.serviceUsername) as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

/**
 * Graded submissions as their students see them, each student on a fresh session (student n
 * made submissions n-1, n-1+students, ...), after the figures were taken.
 */
async function gradedByStudentApi(lms: LocalLms, load: StudentLoad): Promise<number> {
  let graded = 0;
  for (let student = 1; student <= SETTINGS.students; student++) {
    const client = new WebClient(lms.url, { forwardedFor: studentAddress(student) });
    await client.login(`student${student}`, SETTINGS.studentPassword, { retryForMs: 10_000 });
    const own = load.submitted.filter((_, index) => index % SETTINGS.students === student - 1);
    for (const { id } of own) {
      const response = await client.request('GET', `/api/submissions/${id}`);
      const body = (await response.json()) as { state?: string };
      if (body.state === 'graded') graded += 1;
    }
  }
  return graded;
}

/** Each figure against a count the report does not read. */
async function expectFiguresMatchIndependentCounts(run: Run, incarnationsExpected: number) {
  const { figures, incarnations, lms, load } = run;
  // Every incarnation printed its counters, or the sums below would miss some.
  expect(incarnations, 'one replica-counters line per incarnation').toHaveLength(
    incarnationsExpected,
  );
  expect(sumOf(incarnations, 'loginTimeouts'), 'no login gave up: the counts compare').toBe(0);
  expect(figures.logins, 'logins: the watchers own login counters').toBe(
    sumOf(incarnations, 'logins'),
  );
  expect(figures.forbidden, "403s: the watchers' auth failures answered 403").toBe(
    sumOf(incarnations, 'forbidden'),
  );
  expect(figures.evictions, "evictions: the LMS's session_ends rows").toBe(evictedRows(lms));
  const graded = await gradedByStudentApi(lms, load);
  expect(figures.graded, 'graded: the student API').toBe(graded);
}

describe('the storm report figures against independent counts', () => {
  const variables = {
    serviceUsername: SETTINGS.serviceUsername,
    totalConnections: TOTAL_CONNECTIONS,
  };

  it('storm: logins, 403s, evictions and graded match the watchers, session_ends and students', async () => {
    const storm = await loadScenario('storm', variables);
    const run = await runAndCount(
      { ...storm, watcher: { ...storm.watcher, ...NO_TIMEOUTS } },
      true,
    );
    // It stormed, so the comparisons are of counts well above zero.
    expect(run.figures.evictions).toBeGreaterThan(0);
    expect(run.figures.forbidden).toBeGreaterThan(0);
    expect(run.figures.logins).toBeGreaterThan(TOTAL_CONNECTIONS + SETTINGS.connections);
    await expectFiguresMatchIndependentCounts(run, SETTINGS.replicas + 1);
  }, 90_000);

  it('cure (exempt by username): the same figures match, with no eviction and no 403', async () => {
    const cure = await loadScenario('exempt-username', variables);
    const run = await runAndCount({ ...cure, watcher: { ...cure.watcher, ...NO_TIMEOUTS } }, false);
    expect(run.figures.evictions).toBe(0);
    expect(run.figures.forbidden).toBe(0);
    expect(run.figures.graded).toBeGreaterThan(0);
    await expectFiguresMatchIndependentCounts(run, SETTINGS.replicas);
  }, 90_000);
});

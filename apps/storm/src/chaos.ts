import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  type LocalLms,
  type LocalRedis,
  startLms,
  startRedis,
  startWatchers,
  type WatcherFleet,
} from '@storm-lab/harness';
import Database from 'better-sqlite3';
import type { CleanupStack } from './cleanup.ts';
import {
  countGradings,
  type EventLine,
  gradingsOf,
  type ReplicaKill,
  repeatsOfOneKey,
  type StoreLoss,
} from './graded-twice.ts';
import {
  lmsEnv,
  queueNames,
  type RunSettings,
  restartBackoff,
  seedArgs,
  watcherEnv,
} from './settings.ts';
import { studentLoad } from './student-load.ts';

/** What the chaos run counts; the target for each is zero. */
export interface ChaosFigures {
  submitted: number;
  graded: number;
  /** Submitted but never graded before the deadline. */
  lost: number;
  /**
   * Submissions graded twice: the union of {@link ChaosFigures.gradedTwiceByWatchers} and
   * {@link ChaosFigures.acceptedTwiceByLms}.
   */
  gradedTwice: number;
  /**
   * Submissions graded more than once, counted from the replicas' `grading-started` and
   * `grading-finished` lines across incarnations, except a redelivery after the first grader
   * was SIGKILLed, or Redis restarted empty, before it finished (see {@link countGradings}).
   */
  gradedTwiceByWatchers: number;
  /**
   * Submissions whose result the LMS accepted more than once (its `result_acceptances` rows, a
   * repeat with the right key included), except those the gradings show as excused
   * redeliveries.
   */
  acceptedTwiceByLms: number;
  /** Graded more than once, each repeat an excused redelivery (after a kill or a failure). */
  redelivered: number;
  /** Accepted from several connections for one grading: upstream's re-serve, not a fault. */
  repeatsOfOneKey: number;
  /** For each submission graded twice, its gradings (process, start, outcome), to look into. */
  gradedTwiceDetails: string[];
  wrongScores: number;
  faults: string[];
  durationSeconds: number;
}

export interface ChaosOptions {
  settings: RunSettings;
  submissions: number;
  /** Seconds over which submissions are made and faults injected. */
  faultSeconds: number;
  /** Longest wait after the faults for every submission to be graded. */
  settleSeconds: number;
  /** Seed of the fault schedule, so a failing run can be repeated. */
  seed: number;
  onEvent?: (message: string) => void;
}

/** A small deterministic PRNG (mulberry32), so the fault schedule repeats for a seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function retrying<T>(what: () => Promise<T>, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100); // the LMS is restarting: try again shortly
    }
  }
}

/**
 * The chaos scenario: the service account exempt, the hardened client, thousands of
 * submissions, watcher replicas killed with SIGKILL at random moments and restarted, Redis restarted once, the LMS restarted
 * once with SIGTERM and once with SIGKILL. Counts lost, double-graded and wrongly graded
 * submissions from the LMS's own database.
 */
export async function runChaos(
  options: ChaosOptions,
  cleanup: CleanupStack,
): Promise<ChaosFigures> {
  const { settings } = options;
  const say = options.onEvent ?? (() => undefined);
  const next = random(options.seed);
  const queues = queueNames(settings.queues);
  const scenario = {
    name: 'chaos',
    description: 'faults while the account is exempt',
    lms: {
      SINGLE_LOGIN_EXEMPT_USERNAMES: settings.serviceUsername,
      XQUEUE_LOCK_SECONDS: '3',
      LOG_LEVEL: 'warn',
    },
    watcher: {
      // The guarantees under test (nothing lost, nothing graded twice) are this project's
      // client's: upstream's current client drops a refused result and waits for the LMS to
      // serve it again, and dies on a login timeout against an LMS that is restarting.
      WATCHER_MODE: 'hardened',
      WATCHER_JOB_LOCK_MS: '2000',
      LOG_LEVEL: 'warn',
    },
  };
  const dir = await mkdtemp(join(tmpdir(), 'storm-chaos-'));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  const databasePath = join(dir, 'lms.db');
  const port = await freePort();
  const startTheLms = () =>
    startLms({
      databasePath,
      env: { ...lmsEnv(settings, scenario), PORT: String(port) },
      seed: seedArgs(settings, queues),
    });
  let redis: LocalRedis = await startRedis();
  cleanup.add(() => redis.stop());
  let lms: LocalLms = await startTheLms();
  cleanup.add(() => lms.stop('SIGKILL'));
  const lines: EventLine[] = [];
  const kills: ReplicaKill[] = [];
  // The restarted Redis is empty: the jobs in it, and their locks, are gone.
  const storeLosses: StoreLoss[] = [];
  const fleet = await startWatchers({
    replicas: settings.replicas,
    env: watcherEnv(settings, scenario, lms.url, redis.url, `chaos-${process.pid}`),
    // Replicas the run kills stay down until it restarts them; any other exit is restarted.
    supervise: restartBackoff(settings),
    onEvent: (line) => {
      if (line.event.startsWith('grading-') || line.event === 'result-accepted') lines.push(line);
    },
  });
  cleanup.add(() => fleet.stopAll('SIGKILL'));

  const started = Date.now();
  const load = await studentLoad(lms.url, settings, queues);
  const faultEnd = started + options.faultSeconds * 1000;
  const faults: string[] = [];
  const note = (fault: string) => {
    faults.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${fault}`);
    say(fault);
  };

  const submitting = (async () => {
    const intervalMs = (options.faultSeconds * 1000 * 0.8) / options.submissions;
    for (let index = 0; index < options.submissions; index++) {
      const due = started + index * intervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
      await retrying(() => load.submit(index), Date.now() + 30_000);
    }
  })();

  const oneTime = [
    {
      at: 0.3,
      run: async () => {
        await redis.stop();
        redis = await startRedis({ port: redis.port });
        storeLosses.push({ atMs: Date.now() });
        note('redis restarted');
      },
    },
    {
      at: 0.5,
      run: async () => {
        await lms.stop('SIGTERM');
        lms = await startTheLms();
        note('lms restarted (SIGTERM)');
      },
    },
    {
      at: 0.7,
      run: async () => {
        await lms.stop('SIGKILL');
        lms = await startTheLms();
        note('lms restarted (SIGKILL)');
      },
    },
  ];
  while (Date.now() < faultEnd) {
    const progress = (Date.now() - started) / (options.faultSeconds * 1000);
    const due = oneTime.find((fault) => fault.at <= progress);
    if (due) {
      oneTime.splice(oneTime.indexOf(due), 1);
      await due.run();
      continue;
    }
    const victim = Math.floor(next() * settings.replicas);
    const kill = await killReplica(fleet, victim);
    kills.push(kill);
    note(`watcher ${victim + 1} killed (SIGKILL) pid ${kill.pid}`);
    await sleep(200 + next() * 500);
    await fleet.restart(victim);
    await sleep(500 + next() * 1500);
  }
  for (const fault of oneTime) await fault.run();
  await submitting;

  // Wait for the fleet to finish: every submission graded, or the deadline.
  const deadline = Date.now() + options.settleSeconds * 1000;
  const countGraded = () => {
    const db = new Database(databasePath, { readonly: true, fileMustExist: true });
    try {
      return (
        db.prepare("select count(*) as n from submissions where state = 'graded'").get() as {
          n: number;
        }
      ).n;
    } finally {
      db.close();
    }
  };
  while (countGraded() < load.submitted.length && Date.now() < deadline) await sleep(250);

  const outcomes = await Promise.all(
    load.submitted.map((submission) => retrying(() => load.outcome(submission), deadline + 10_000)),
  );
  const gradings = gradingsOf(lines);
  const byWatchers = countGradings(gradings, kills, storeLosses);
  const excused = new Set(byWatchers.redelivered);
  const byLms = acceptedTwiceByLms(databasePath).filter((id) => !excused.has(id));
  const twice = [...new Set([...byWatchers.gradedTwice, ...byLms])].sort((a, b) => a - b);
  const gradedTwice = twice.length;
  const at = (ms: number) => `${((ms - started) / 1000).toFixed(2)}s`;
  const gradedTwiceDetails = twice.map((id) => {
    const list = gradings
      .filter((grading) => grading.submissionId === id)
      .map((g) => `pid ${g.pid} from ${at(g.startedAtMs)} ${g.outcome ?? 'unfinished'}`);
    return `submission ${id}: ${list.join('; ') || 'no grading line'}`;
  });
  const graded = outcomes.filter((outcome) => outcome.graded).length;
  const wrongScores = load.submitted.filter((submission, index) => {
    const outcome = outcomes[index];
    return outcome?.graded && outcome.correct !== submission.expectCorrect;
  }).length;
  return {
    submitted: load.submitted.length,
    graded,
    lost: load.submitted.length - graded,
    gradedTwice,
    gradedTwiceByWatchers: byWatchers.gradedTwice.length,
    acceptedTwiceByLms: byLms.length,
    redelivered: byWatchers.redelivered.length,
    repeatsOfOneKey: repeatsOfOneKey(lines, gradings).length,
    gradedTwiceDetails,
    wrongScores,
    faults,
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

/**
 * SIGKILLs replica `index` and notes the incarnation's pid once its stdout is closed: every
 * event line it printed has then been read, so each has an earlier time than the
 * kill (a line still in the pipe would otherwise look posted after the kill).
 */
async function killReplica(fleet: WatcherFleet, index: number): Promise<ReplicaKill> {
  const victim = fleet.replicas[index];
  if (!victim) throw new Error(`no replica ${index}`);
  const stdout = victim.child.stdout;
  const closed =
    !stdout || stdout.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => stdout.once('close', () => resolve()));
  await fleet.kill(index, 'SIGKILL');
  await closed;
  return { pid: victim.pid, atMs: Date.now() };
}

/** Submissions the LMS accepted a result for more than once, a repeat with the right key included. */
function acceptedTwiceByLms(databasePath: string): number[] {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('select submission_id as id from result_acceptances where accepted > 1')
      .all() as { id: number }[];
    return rows.map((row) => row.id);
  } finally {
    db.close();
  }
}

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
import { type AcceptedResult, type ReplicaKill, submissionsGradedTwice } from './graded-twice.ts';
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
   * Submissions graded twice: two accepted results counted across the replicas'
   * `result-accepted` events, except a repeat after the first poster was SIGKILLed (at-least-once
   * redelivery; see {@link submissionsGradedTwice}), together with any the LMS itself recorded
   * twice (`result_posts > 1`, which its guard should keep from ever happening).
   */
  gradedTwice: number;
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
  const accepted: AcceptedResult[] = [];
  const kills: ReplicaKill[] = [];
  const fleet = await startWatchers({
    replicas: settings.replicas,
    env: watcherEnv(settings, scenario, lms.url, redis.url, `chaos-${process.pid}`),
    // Replicas the run kills stay down until it restarts them; any other exit is restarted.
    supervise: restartBackoff(settings),
    onEvent: ({ event, pid, atMs, fields }) => {
      if (event === 'result-accepted' && typeof fields.submissionId === 'number') {
        accepted.push({ submissionId: fields.submissionId, pid, atMs });
      }
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
    kills.push(await killReplica(fleet, victim));
    note(`watcher ${victim + 1} killed (SIGKILL)`);
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
  const gradedTwice = new Set([
    ...submissionsGradedTwice(accepted, kills),
    ...recordedTwiceByLms(databasePath),
  ]).size;
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
    wrongScores,
    faults,
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

/**
 * SIGKILLs replica `index` and notes the incarnation's pid once its stdout is closed: every
 * `result-accepted` line it printed has then been read, so each has an earlier time than the
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

/** Submissions the LMS recorded more than one result for (its guard should make this none). */
function recordedTwiceByLms(databasePath: string): number[] {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('select id from submissions where result_posts > 1').all() as {
      id: number;
    }[];
    return rows.map((row) => row.id);
  } finally {
    db.close();
  }
}

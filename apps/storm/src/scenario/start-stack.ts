import {
  type LocalLms,
  type StartedReplica,
  startLms,
  startWatchers,
  useRedis,
  type WatcherFleet,
  waitFor,
} from '@storm-lab/harness';
import type { EventLine } from '../graded-twice.ts';
import { type Counters, readCounters } from '../sampler.ts';
import type { Scenario } from '../scenarios.ts';
import {
  lmsEnv,
  queueNames,
  type RunSettings,
  restartBackoff,
  seedArgs,
  watcherEnv,
} from '../settings.ts';
import { type StudentLoad, studentLoad } from '../student-load.ts';

/** Everything a scenario started, so that an interrupt can stop it. */
export interface Cleanup {
  add(stop: () => Promise<void>): void;
}

/** One scenario's running stack: the LMS, its students and the watcher fleet. */
export interface Stack {
  lms: LocalLms;
  fleet: WatcherFleet;
  /** The students, logged in, ready to submit. */
  load: StudentLoad;
  /** The LMS's counters before the fleet started, so the fleet's first logins count. */
  base: Counters;
  /** Why each connection died, as its replica said, with when; grows while the run goes on. */
  deaths: string[];
  /** Every replica's `grading-started` and `grading-finished` lines, as they arrive. */
  gradingLines: EventLine[];
}

/**
 * Starts one scenario's stack with real processes, each stop registered with `cleanup`: Redis
 * (private, or `settings.redisUrl`), a freshly seeded LMS, the students logged in, then the
 * watcher fleet one replica after another, supervised (a replica that exits is restarted, as in
 * production).
 *
 * @example
 * const stack = await startStack(scenario, settings, cleanup);
 */
export async function startStack(
  scenario: Scenario,
  settings: RunSettings,
  cleanup: Cleanup,
): Promise<Stack> {
  const queues = queueNames(settings.queues);
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
  const gradingLines: EventLine[] = [];
  const fleet = await startWatchers({
    replicas: settings.replicas,
    env: watcherEnv(settings, scenario, lms.url, redis.url, prefix),
    onEvent: (line) => {
      const { event, replicaId, atMs, fields } = line;
      if (event.startsWith('grading-')) gradingLines.push(line);
      if (event !== 'connection-died') return;
      const at = ((atMs - fleetStarted) / 1000).toFixed(2);
      deaths.push(`replica ${replicaId} at ${at} s after the fleet started: ${fields.reason}`);
    },
    supervise: restartBackoff(settings),
    // Replicas come up one after another, as a deployment's pods do.
    oneByOne: oneByOne(settings),
  });
  cleanup.add(() => fleet.stopAll());
  return { lms, fleet, load, base, deaths, gradingLines };
}

/**
 * Waits (at most 10 s) until each of a replica's connections ended its first login attempt
 * (its `first-login` lines), without asking the replica anything while its logins are in flight.
 */
async function firstLoginsDone(replica: StartedReplica, connections: number): Promise<void> {
  await waitFor(() => ((replica.events['first-login'] ?? 0) >= connections ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'the replica to log in',
  }).catch(() => undefined); // a replica that died meanwhile is the supervisor's business
}

/**
 * Replicas start one after another, as a deployment's pods do: each once the previous one's
 * connections have logged in, so that no two replicas' first logins share the LMS.
 */
export function oneByOne(settings: Pick<RunSettings, 'queues' | 'connections'>) {
  const connections = settings.queues * settings.connections;
  return { settle: (replica: StartedReplica) => firstLoginsDone(replica, connections) };
}

import { setTimeout as delay } from 'node:timers/promises';
import type { XQueueClient } from '@storm-lab/lms-client';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createWatcherClient } from './client.ts';
import type { QueueConfig, WatcherConfig } from './config.ts';
import { type ConnectionEnd, type GradeViaJob, reportDeath, runConnection } from './connection.ts';
import type { WatcherMode } from './env.ts';
import { logGrading } from './events.ts';
import { chainGraders, createGrader, type Grader, type HandlerSpec } from './graders.ts';
import { addGradeJob, type GradeJobData, type GradeJobResult, gradeQueueName } from './jobs.ts';
import { managerWait } from './manager.ts';
import type { WatcherMetrics } from './metrics.ts';
import { createGradeProcessor } from './processor.ts';
import { runHardenedPuller, type Sleep } from './puller.ts';

export interface ReplicaOptions {
  config: WatcherConfig;
  replicaId: string;
  redisUrl: string;
  /** BullMQ key prefix; replicas that share it share the grading work. */
  queuePrefix: string;
  /** BullMQ worker concurrency, per watched queue. */
  concurrency: number;
  /** BullMQ lockDuration and stalledInterval: how fast a dead replica's jobs move on. */
  jobLockMs: number;
  mode: WatcherMode;
  sendInstanceId: boolean;
  /** TEST ONLY: grade (and in hardened mode post) every job twice; see `GradeProcessorDeps`. */
  gradeEveryJobTwice?: boolean;
  metrics: WatcherMetrics;
  logger: Logger;
  now?: () => number;
  random?: () => number;
  sleep?: Sleep;
}

/** A running replica: its connections, BullMQ workers, and the clients they share. */
export interface Replica {
  /** Clients by the queue name they send. */
  clients: ReadonlyMap<string, readonly XQueueClient[]>;
  /**
   * Resolves with a reason when the liveness check (every POLL_TIME) found a dead connection,
   * as upstream's `Manager.wait` does; the process should then `stop()` and exit non-zero.
   * Never resolves in hardened mode, whose connections do not die.
   */
  died: Promise<string>;
  /** Stops pulling, lets in-flight submissions finish, closes BullMQ and Redis. Idempotent. */
  stop(): Promise<void>;
}

// How long a connection waits for its grading job: upstream grades in line without a limit;
// a bound keeps a lost job (Redis gone) from holding the connection forever.
const GRADE_WAIT_MS = 300_000;

const abortableSleep: Sleep = (ms, signal) =>
  delay(ms, undefined, { signal }).catch(() => undefined);

interface Group {
  queue: QueueConfig;
  clients: XQueueClient[];
}

function createGroups(options: ReplicaOptions): Group[] {
  const { manager } = options.config;
  let ordinal = 0;
  return options.config.queues.map((queue) => ({
    queue,
    clients: Array.from({ length: queue.connections }, () => {
      const index = ordinal++;
      return createWatcherClient({
        serverUrl: queue.serverUrl,
        queue: queue.sentName,
        username: queue.username,
        password: queue.password,
        mode: options.mode,
        instanceId: options.sendInstanceId
          ? `${options.replicaId}/${queue.sentName}/${index}`
          : null,
        requestsTimeoutMs: manager.requestsTimeoutMs,
        httpBasicAuth: manager.httpBasicAuth,
        verifyTls: manager.verifyTls,
        metrics: options.metrics,
        logger: options.logger.child({ queue: queue.sentName, connection: index }),
        now: options.now ?? Date.now,
      });
    }),
  }));
}

/** Round-robin over the clients of one server and queue, so results reuse logins. */
function roundRobin(groups: readonly Group[]) {
  // Clients by server and queue, gathered once: this runs for every result a job posts.
  const lists = new Map<string, XQueueClient[]>();
  for (const { queue, clients } of groups) {
    const key = `${queue.serverUrl} ${queue.sentName}`;
    lists.set(key, [...(lists.get(key) ?? []), ...clients]);
  }
  const next = new Map<string, number>();
  return (serverUrl: string, queue: string): XQueueClient | undefined => {
    const key = `${serverUrl} ${queue}`;
    const list = lists.get(key);
    if (!list || list.length === 0) return undefined;
    const index = (next.get(key) ?? 0) % list.length;
    next.set(key, index + 1);
    return list[index];
  };
}

function graderCache(deps: { sleep: Sleep; random: () => number }) {
  const graders = new Map<string, Grader>();
  return (handlers: HandlerSpec[]): Grader => {
    const key = JSON.stringify(handlers);
    let grader = graders.get(key);
    if (!grader) {
      grader = chainGraders(handlers.map((spec) => createGrader(spec, deps)));
      graders.set(key, grader);
    }
    return grader;
  };
}

/** BullMQ's queue, worker and (for connections that wait on jobs) events of one xqueue queue. */
function bullFor(
  name: string,
  options: ReplicaOptions,
  connection: Redis,
  processor: ReturnType<typeof createGradeProcessor>,
) {
  const bullOptions = { connection, prefix: options.queuePrefix };
  const queue = new Queue<GradeJobData, GradeJobResult>(gradeQueueName(name), bullOptions);
  const worker = new Worker<GradeJobData, GradeJobResult>(gradeQueueName(name), processor, {
    ...bullOptions,
    name: options.replicaId,
    concurrency: options.concurrency,
    // A killed replica's jobs go back to wait after the lock lapses and a stalled check runs.
    lockDuration: options.jobLockMs,
    stalledInterval: options.jobLockMs,
    maxStalledCount: 2,
  });
  const { logger } = options;
  worker.on('error', (error) => logger.error({ err: error, queue: name }, 'worker error'));
  worker.on('failed', (job, error) => {
    logger.warn(
      { jobId: job?.id, queue: name, attempts: job?.attemptsMade, err: error },
      'job failed',
    );
    if (job) logGrading(logger, 'grading-finished', job, 'failed');
  });
  // After BullMQ marked the job done: killed before this line, the job may be delivered again.
  worker.on('completed', (job, result) =>
    logGrading(logger, 'grading-finished', job, result.outcome),
  );
  // QueueEvents blocks on its own connection, so it gets one of its own.
  const eventsConnection = options.mode === 'hardened' ? null : connection.duplicate();
  const events = eventsConnection
    ? new QueueEvents(gradeQueueName(name), {
        connection: eventsConnection,
        prefix: options.queuePrefix,
      })
    : null;
  events?.on('error', (error) => logger.error({ err: error, queue: name }, 'queue events error'));
  const grade: GradeViaJob = async (jobId, data) => {
    if (!events) throw new Error('hardened connections do not wait on jobs');
    const { job } = await addGradeJob(queue, jobId, data);
    return job.waitUntilFinished(events, GRADE_WAIT_MS);
  };
  const close = async () => {
    await worker.close(); // waits for active jobs; waiting ones stay for the other replicas
    await events?.close();
    await eventsConnection?.quit().catch(() => eventsConnection.disconnect());
    await queue.close();
  };
  // Everything BullMQ loads (connections, Lua scripts) before any connection logs in: work on
  // this event loop while a login is in flight would count against REQUESTS_TIMEOUT.
  const ready = () =>
    Promise.all([queue.waitUntilReady(), worker.waitUntilReady(), events?.waitUntilReady()]);
  return { queue, grade, close, ready };
}

/**
 * Resolves once this process's start-up work is done: its CPU time (every thread's, so V8's
 * background compilation and garbage collection count) stayed under a quarter of a core over
 * two 50 ms windows in a row; at most `maxMs`. Returns how long that took.
 */
async function startUpSettled(maxMs = 1000): Promise<number> {
  const started = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - started < maxMs) {
    const cpu = process.cpuUsage();
    const wall = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const used = process.cpuUsage(cpu);
    const busy = (used.user + used.system) / 1000 / (performance.now() - wall);
    quiet = busy < 0.25 ? quiet + 1 : 0;
  }
  return Math.round(performance.now() - started);
}

/**
 * Starts one replica, as upstream's `Manager`: per configured queue, CONNECTIONS clients each
 * running its loop, and a BullMQ worker per queue that grades for every replica. In `current`
 * and `legacy` mode each connection is upstream's serial loop and waits on its grading job; in
 * `hardened` mode connections pull continuously and jobs post their own results.
 *
 * @example
 * const replica = await startReplica({ config, replicaId: 'r-1', redisUrl, mode: 'current', ... });
 * const reason = await replica.died; await replica.stop(); process.exit(1);
 */
export async function startReplica(options: ReplicaOptions): Promise<Replica> {
  const { config, logger, metrics } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? abortableSleep;
  const random = options.random ?? Math.random;
  // BullMQ needs maxRetriesPerRequest null on connections it blocks on.
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', (error) => logger.error({ err: error }, 'redis connection error'));

  const groups = createGroups(options);
  const processor = createGradeProcessor({
    graderFor: graderCache({ sleep, random }),
    clientFor: roundRobin(groups),
    metrics,
    logger,
    now,
    gradeEveryJobTwice: options.gradeEveryJobTwice ?? false,
  });
  const names = [...new Set(config.queues.map((q) => q.sentName))];
  const bulls = new Map(names.map((name) => [name, bullFor(name, options, connection, processor)]));
  // As upstream's Manager: configure everything, then start the clients.
  await Promise.all([...bulls.values()].map((bull) => bull.ready()));
  // Upstream's clients start in a Python process whose start-up is over; a fresh Node process
  // still compiles and collects on background threads for a few hundred milliseconds, and on a
  // small machine that CPU would delay the first logins (measured here: 4 parallel logins took
  // up to 0.52 s instead of 0.35 s) toward REQUESTS_TIMEOUT.
  const settledMs = await startUpSettled();
  logger.debug({ settledMs }, 'start-up settled');
  const stopLoops = new AbortController();
  // How each connection ended, by its place in start order (what the manager looks at).
  const ends: (ConnectionEnd | undefined)[] = [];
  let started = 0;
  const loops = groups.flatMap(({ queue, clients }) =>
    clients.map(async (client, index) => {
      const ordinal = started++;
      const bull = bulls.get(queue.sentName)!;
      const shared = {
        client,
        jobMeta: {
          handlers: queue.handlers,
          serverUrl: queue.serverUrl,
          queue: queue.sentName,
          pulledBy: options.replicaId,
        },
        pollIntervalMs: config.manager.pollIntervalMs,
        loginPollIntervalMs: config.manager.loginPollIntervalMs,
        sleep,
        now,
        metrics,
        // The connection's index names it in its lines (e.g. `result-accepted`).
        logger: logger.child({ queue: queue.sentName, connection: index }),
        signal: stopLoops.signal,
      };
      metrics.connectionsAlive.inc({ queue: queue.sentName });
      try {
        if (options.mode === 'hardened') {
          await runHardenedPuller({
            ...shared,
            random,
            enqueue: (jobId, data) => addGradeJob(bull.queue, jobId, data),
          });
          return;
        }
        const end = await runConnection({ ...shared, grade: bull.grade });
        if (end.kind === 'died') {
          reportDeath(shared, end.reason);
          ends[ordinal] = end;
        }
      } finally {
        metrics.connectionsAlive.dec({ queue: queue.sentName });
      }
    }),
  );

  const died = managerWait({
    ends,
    connections: started,
    pollTimeMs: config.manager.pollTimeMs,
    sleep,
    signal: stopLoops.signal,
  });

  const stop = async () => {
    stopLoops.abort();
    await Promise.all(loops);
    await Promise.all([...bulls.values()].map((bull) => bull.close()));
    await Promise.all(groups.flatMap((g) => g.clients.map((client) => client.close())));
    await connection.quit().catch(() => connection.disconnect());
  };
  let stopping: Promise<void> | null = null;
  const clients = new Map<string, XQueueClient[]>();
  for (const { queue, clients: list } of groups) {
    clients.set(queue.sentName, [...(clients.get(queue.sentName) ?? []), ...list]);
  }
  return {
    clients,
    died,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

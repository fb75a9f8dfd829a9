import { setTimeout as delay } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { QueueConfig, WatcherConfig } from './config.ts';
import type { ReloginMode } from './env.ts';
import { chainGraders, createGrader, type Grader } from './graders.ts';
import {
  GRADE_JOB_OPTIONS,
  type GradeJobData,
  type GradeJobResult,
  gradeQueueName,
} from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';
import { createGradeProcessor } from './processor.ts';
import { runPuller, type Sleep } from './puller.ts';
import { XQueueClient } from './xqueue-client.ts';

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
  relogin: ReloginMode;
  sendInstanceId: boolean;
  metrics: WatcherMetrics;
  logger: Logger;
  now?: () => number;
  random?: () => number;
  sleep?: Sleep;
}

/** A running replica: pullers, BullMQ workers, and the clients they share. */
export interface Replica {
  clients: ReadonlyMap<string, readonly XQueueClient[]>;
  /** Stops pulling, lets in-flight jobs finish, closes BullMQ and Redis. Safe to call twice. */
  stop(): Promise<void>;
}

const abortableSleep: Sleep = (ms, signal) =>
  delay(ms, undefined, { signal }).catch(() => undefined);

function createClients(queue: QueueConfig, options: ReplicaOptions): XQueueClient[] {
  const { manager } = options.config;
  return Array.from({ length: queue.connections }, (_, index) => {
    return new XQueueClient({
      serverUrl: queue.serverUrl,
      queue: queue.name,
      username: queue.username,
      password: queue.password,
      relogin: options.relogin,
      instanceId: options.sendInstanceId ? `${options.replicaId}/${queue.name}/${index}` : null,
      requestsTimeoutMs: manager.requestsTimeoutMs,
      metrics: options.metrics,
      logger: options.logger.child({ queue: queue.name, connection: index }),
      now: options.now ?? Date.now,
    });
  });
}

/** Round-robin over a queue's clients, so put_result reuses logins instead of adding any. */
function roundRobin(clients: ReadonlyMap<string, readonly XQueueClient[]>) {
  const next = new Map<string, number>();
  return (queue: string): XQueueClient | undefined => {
    const list = clients.get(queue);
    if (!list || list.length === 0) return undefined;
    const index = next.get(queue) ?? 0;
    next.set(queue, (index + 1) % list.length);
    return list[index];
  };
}

function createWorker(
  queue: QueueConfig,
  processor: ReturnType<typeof createGradeProcessor>,
  bullOptions: { connection: Redis; prefix: string },
  options: ReplicaOptions,
): Worker<GradeJobData, GradeJobResult> {
  const { logger } = options;
  const worker = new Worker<GradeJobData, GradeJobResult>(gradeQueueName(queue.name), processor, {
    ...bullOptions,
    name: options.replicaId,
    concurrency: options.concurrency,
    // A killed replica's jobs go back to wait after the lock lapses and a stalled check runs.
    lockDuration: options.jobLockMs,
    stalledInterval: options.jobLockMs,
    maxStalledCount: 2,
  });
  worker.on('error', (error) => logger.error({ err: error, queue: queue.name }, 'worker error'));
  worker.on('failed', (job, error) =>
    logger.warn(
      { jobId: job?.id, queue: queue.name, attempts: job?.attemptsMade, err: error },
      'job failed',
    ),
  );
  return worker;
}

function startPullers(
  queue: QueueConfig,
  clients: readonly XQueueClient[],
  bullQueue: Queue<GradeJobData, GradeJobResult>,
  options: ReplicaOptions & { sleep: Sleep; now: () => number; signal: AbortSignal },
): Promise<void>[] {
  const { manager } = options.config;
  return clients.map((client) =>
    runPuller({
      client,
      enqueue: async (jobId, data) => {
        await bullQueue.add('grade', data, { ...GRADE_JOB_OPTIONS, jobId });
      },
      pollIntervalMs: manager.pollIntervalMs,
      loginPollIntervalMs: manager.loginPollIntervalMs,
      replicaId: options.replicaId,
      sleep: options.sleep,
      now: options.now,
      metrics: options.metrics,
      logger: options.logger.child({ queue: queue.name }),
      signal: options.signal,
    }),
  );
}

/**
 * Starts one replica: per queue, CONNECTIONS clients each running a puller, and one BullMQ
 * worker that grades and posts results through those same clients.
 *
 * @example
 * const replica = await startReplica({ config, replicaId: 'r-1', redisUrl, ... });
 * process.once('SIGTERM', () => void replica.stop());
 */
export async function startReplica(options: ReplicaOptions): Promise<Replica> {
  const { config, logger, metrics } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? abortableSleep;
  const graderDeps = { sleep, random: options.random ?? Math.random };
  // BullMQ needs maxRetriesPerRequest null on connections it blocks on.
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', (error) => logger.error({ err: error }, 'redis connection error'));

  const clients = new Map(config.queues.map((q) => [q.name, createClients(q, options)]));
  const graders = new Map<string, Grader>(
    config.queues.map((q) => [
      q.name,
      chainGraders(q.handlers.map((h) => createGrader(h, graderDeps))),
    ]),
  );
  const processor = createGradeProcessor({
    graderFor: (queue) => graders.get(queue),
    clientFor: roundRobin(clients),
    metrics,
    logger,
    now,
  });
  const bullOptions = { connection, prefix: options.queuePrefix };
  const queues = config.queues.map(
    (q) => new Queue<GradeJobData, GradeJobResult>(gradeQueueName(q.name), bullOptions),
  );
  const workers = config.queues.map((q) => createWorker(q, processor, bullOptions, options));
  const stopPulling = new AbortController();
  const pullerOptions = { ...options, sleep, now, signal: stopPulling.signal };
  const pullers = config.queues.flatMap((q, i) =>
    startPullers(q, clients.get(q.name) ?? [], queues[i]!, pullerOptions),
  );

  const stop = async () => {
    stopPulling.abort();
    await Promise.all(pullers);
    // close() waits for active jobs; waiting jobs stay in Redis for the other replicas.
    await Promise.all(workers.map((worker) => worker.close()));
    await Promise.all(queues.map((queue) => queue.close()));
    await connection.quit().catch(() => connection.disconnect());
  };
  let stopping: Promise<void> | null = null;
  return {
    clients,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

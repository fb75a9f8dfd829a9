import cluster, { type Worker } from 'node:cluster';
import { createStormDetector } from '@storm-lab/session-policy';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { openDatabase } from '../db/client.ts';
import type { LmsConfig } from '../env.ts';
import { mergeSeries } from '../ops/live-stats.ts';
import { localStormWatch, type StormWatch } from '../ops/storm-watch.ts';
import {
  createEndpoint,
  type Peer,
  type PrimaryTopics,
  REQUEST_TIMEOUT_MS,
  type WorkerTopics,
} from './channel.ts';

// LMS_WORKERS=N: N worker processes share one port through node:cluster, as gunicorn's workers
// share one socket. Sessions are in Redis (SESSION_STORE=redis), the rest in the SQLite file;
// /metrics on any worker answers for all of them, the storm detector runs in the primary,
// fed by every worker, so its alerts and rates are the whole LMS's, and the dashboard's
// per-second series is every worker's, added up.

/** A worker that keeps dying is not restarted faster than this. */
const RESTART_DELAY_MS = 1_000;
/**
 * The longest delay before replacing a worker that exited before it listened (it waited for
 * Redis that long first): the delay doubles from RESTART_DELAY_MS while replacements fail.
 */
const RESTART_DELAY_MAX_MS = 10_000;

function peerOf(worker: Worker): Peer {
  return {
    name: `worker ${worker.id}`,
    // A worker that died meanwhile has no channel left to answer on.
    send: (message) => {
      if (worker.isConnected()) worker.send(message);
    },
  };
}

/**
 * The primary's side of the channel: answers its workers' requests, asking every worker that
 * listens for its part of an answer that covers them all.
 */
function answerWorkers(listening: ReadonlySet<number>, storms: StormWatch): void {
  /** The same request to every worker that listens (each has its registry set by then). */
  const fanOut = <K extends keyof WorkerTopics & string>(
    topic: K,
    question: WorkerTopics[K]['question'],
  ): Promise<WorkerTopics[K]['answer'][]> => {
    const workers = Object.values(cluster.workers ?? {}).filter(
      (worker): worker is Worker =>
        worker !== undefined && listening.has(worker.id) && worker.isConnected(),
    );
    return Promise.all(workers.map((worker) => endpoint.request(peerOf(worker), topic, question)));
  };
  const endpoint = createEndpoint<WorkerTopics, PrimaryTopics>(
    {
      metrics: async () => {
        const parts = await fanOut('metrics', {});
        return parts.length === 0 ? '' : AggregatorRegistry.aggregate(parts).metrics();
      },
      'storm-record': ({ account, at, evicted }) => storms.record(account, at, evicted),
      'storm-rates': ({ at }) => storms.rates(at),
      // The asking worker listens, so there is always at least one part.
      'live-series': async (question) => mergeSeries(await fanOut('live-series', question)),
    },
    { timeoutMs: REQUEST_TIMEOUT_MS },
  );
  cluster.on('message', (worker: Worker, message: unknown) =>
    endpoint.receive(peerOf(worker), message),
  );
}

/**
 * The primary of `LMS_WORKERS=N`: migrates the database once, forks N workers (each runs the
 * server and logs its own `listening` line), answers their requests (metrics and series of all
 * of them, the LMS-wide storm detector), replaces a worker that dies, and on SIGTERM or SIGINT
 * stops them all and resolves. Until a first worker listens, a worker that exits before it
 * listens (a bad setting) stops the others: the primary then rejects, and the worker has already
 * said why. Once the LMS has served, such a worker (one that gave up waiting for Redis) is
 * replaced after a delay that doubles while its replacements keep failing, and the others keep
 * serving.
 *
 * @example
 * await runPrimary(readEnv(), logger);
 */
export async function runPrimary(config: LmsConfig, logger: Logger): Promise<void> {
  const lifecycle = logger.child({}, { level: 'info' });
  // Migrations run once, here, before any worker opens the file.
  openDatabase({ path: config.databasePath }).close();
  const storms = localStormWatch(
    createStormDetector({ evictionsPerMinuteThreshold: config.stormAlertEvictionsPerMinute }),
  );
  let stopping = false;
  /** Some worker has listened: the settings work, so a worker that cannot start is replaced. */
  let served = false;
  /** Workers in a row that exited before they listened: the restart delay doubles with it. */
  let unstarted = 0;
  const listening = new Set<number>();
  const alive = new Set<number>();
  const restarts = new Set<NodeJS.Timeout>();

  answerWorkers(listening, storms);
  cluster.on('listening', (worker) => {
    listening.add(worker.id);
    served = true;
    unstarted = 0;
  });

  const fork = () => alive.add(cluster.fork().id);
  const restartAfter = (delayMs: number) => {
    const timer = setTimeout(() => {
      restarts.delete(timer);
      fork();
    }, delayMs);
    restarts.add(timer);
  };
  const stopAll = () => {
    stopping = true;
    for (const timer of restarts) clearTimeout(timer);
    restarts.clear();
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };

  return new Promise<void>((resolve, reject) => {
    let failure: Error | null = null;
    // Every worker gone, none to come (stopping cancels the pending restarts).
    const settle = () => {
      if (!stopping || alive.size > 0) return;
      if (failure) return reject(failure);
      lifecycle.info('stopped');
      resolve();
    };
    cluster.on('exit', (worker, code, signal) => {
      alive.delete(worker.id);
      const listened = listening.delete(worker.id);
      const pid = worker.process.pid;
      if (stopping) return settle();
      if (!listened && !served) {
        failure = new Error(`an LMS worker exited before it listened (code ${code})`);
        stopAll();
      } else if (!listened) {
        unstarted++;
        const delayMs = Math.min(RESTART_DELAY_MS * 2 ** (unstarted - 1), RESTART_DELAY_MAX_MS);
        lifecycle.warn(
          { worker: pid, code, signal, delayMs },
          'worker exited before it listened; starting another',
        );
        restartAfter(delayMs);
      } else {
        lifecycle.warn({ worker: pid, code, signal }, 'worker died; starting another');
        restartAfter(RESTART_DELAY_MS);
      }
      settle();
    });
    const stop = (signal: NodeJS.Signals) => {
      lifecycle.info({ signal, workers: alive.size }, 'shutting down');
      stopAll();
      settle();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    for (let index = 0; index < config.workers; index++) fork();
  });
}

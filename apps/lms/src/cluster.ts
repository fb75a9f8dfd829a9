import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { openDatabase } from './db/client.ts';
import type { LmsConfig } from './env.ts';

// LMS_WORKERS=N: N worker processes share one port through node:cluster, as gunicorn's workers
// share one socket. Sessions are in Redis (SESSION_STORE=redis), the rest in the SQLite file;
// /metrics on any worker answers for all of them.

const METRICS_REQUEST = 'lms:metrics-request';
const METRICS_REPLY = 'lms:metrics-reply';
/** How long a worker waits for the primary's aggregated metrics. */
const METRICS_TIMEOUT_MS = 5_000;
/** A worker that keeps dying is not restarted faster than this. */
const RESTART_DELAY_MS = 1_000;

interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}

interface MetricsReply {
  type: typeof METRICS_REPLY;
  id: number;
  text?: string;
  error?: string;
}

/**
 * In a worker: answers the primary's requests for this worker's metrics (prom-client's cluster
 * protocol) and returns how to get every worker's metrics summed, for `/metrics`.
 *
 * @example
 * const clusterMetrics = workerMetrics(metrics.registry);
 * const text = await clusterMetrics(); // lms_logins_total of all workers
 */
export function workerMetrics(registry: Registry): () => Promise<string> {
  // Constructing it registers prom-client's worker-side listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, (reply: MetricsReply) => void>();
  process.on('message', (message: MetricsReply) => {
    if (message?.type !== METRICS_REPLY) return;
    waiting.get(message.id)?.(message);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary did not answer with the metrics in time'));
      }, METRICS_TIMEOUT_MS);
      waiting.set(id, (reply) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (reply.text !== undefined) resolve(reply.text);
        else reject(new Error(reply.error ?? 'no metrics'));
      });
      process.send?.({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
    });
}

/** True in a process `runPrimary` forked. */
export const isClusterWorker = () => cluster.isWorker;

/**
 * The primary of `LMS_WORKERS=N`: migrates the database once, forks N workers (each runs the
 * server and logs its own `listening` line), sums their metrics for `/metrics`, replaces a
 * worker that dies, and on SIGTERM or SIGINT stops them all and resolves. A worker that exits
 * before it listens (a bad setting, Redis unreachable) stops the others: the primary then
 * rejects, and the worker has already said why.
 *
 * @example
 * await runPrimary(readEnv(), logger);
 */
export async function runPrimary(config: LmsConfig, logger: Logger): Promise<void> {
  const lifecycle = logger.child({}, { level: 'info' });
  // Migrations run once, here, before any worker opens the file.
  openDatabase({ path: config.databasePath }).close();
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const listening = new Set<number>();
  const alive = new Set<number>();

  cluster.on('message', (worker: Worker, message: MetricsRequest) => {
    if (message?.type !== METRICS_REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: METRICS_REPLY, id: message.id, text }),
      (error: Error) => worker.send({ type: METRICS_REPLY, id: message.id, error: error.message }),
    );
  });
  cluster.on('listening', (worker) => listening.add(worker.id));

  const stopAll = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  const fork = () => alive.add(cluster.fork().id);

  return new Promise<void>((resolve, reject) => {
    let failure: Error | null = null;
    cluster.on('exit', (worker, code, signal) => {
      alive.delete(worker.id);
      if (!stopping && !listening.has(worker.id)) {
        failure = new Error(`an LMS worker exited before it listened (code ${code})`);
        stopping = true;
        stopAll();
      } else if (!stopping) {
        lifecycle.warn(
          { worker: worker.process.pid, code, signal },
          'worker died; starting another',
        );
        setTimeout(fork, RESTART_DELAY_MS);
      }
      listening.delete(worker.id);
      if (stopping && alive.size === 0) {
        if (failure) reject(failure);
        else {
          lifecycle.info('stopped');
          resolve();
        }
      }
    });
    const stop = (signal: NodeJS.Signals) => {
      lifecycle.info({ signal, workers: alive.size }, 'shutting down');
      stopping = true;
      stopAll();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    for (let index = 0; index < config.workers; index++) fork();
  });
}

import cluster, { type Worker } from 'node:cluster';
import { type AccountRates, createStormDetector, type StormAlert } from '@storm-lab/session-policy';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { openDatabase } from './db/client.ts';
import type { LmsConfig } from './env.ts';
import { type LiveSeries, type LiveStats, mergeSeries } from './ops/live-stats.ts';
import { localStormWatch, type StormWatch } from './ops/storm-watch.ts';

// LMS_WORKERS=N: N worker processes share one port through node:cluster, as gunicorn's workers
// share one socket. Sessions are in Redis (SESSION_STORE=redis), the rest in the SQLite file;
// /metrics on any worker answers for all of them, the storm detector runs in the primary,
// fed by every worker, so its alerts and rates are the whole LMS's, and the dashboard's
// per-second series is every worker's, added up.

const ASK = 'lms:ask';
const ANSWER = 'lms:answer';
/** The primary asking every worker for its part of an answer, and a worker's reply. */
const COLLECT = 'lms:collect';
const COLLECTED = 'lms:collected';
/** How long a worker waits for the primary's answer. */
const ASK_TIMEOUT_MS = 5_000;
/** A worker that keeps dying is not restarted faster than this. */
const RESTART_DELAY_MS = 1_000;
/**
 * The longest delay before replacing a worker that exited before it listened (it waited for
 * Redis that long first): the delay doubles from RESTART_DELAY_MS while replacements fail.
 */
const RESTART_DELAY_MAX_MS = 10_000;

/** What a worker asks the primary, and what each answer carries. */
interface Questions {
  /** Every worker's metrics, summed (prom-client's cluster aggregation). */
  metrics: { question: Record<string, never>; answer: string };
  /** One login (and its evictions) for the LMS-wide storm detector. */
  'storm-record': {
    question: { account: string; at: number; evicted: number };
    answer: StormAlert[];
  };
  'storm-rates': { question: { at: number }; answer: AccountRates[] };
  /** The dashboard's per-second series of every worker, for the same seconds, added up. */
  'live-series': { question: { seconds: number; at: number }; answer: LiveSeries };
}
type Topic = keyof Questions;

/** How the primary answers each topic. */
type Answers = {
  [T in Topic]: (question: Questions[T]['question']) => Promise<Questions[T]['answer']>;
};

interface AskMessage {
  type: typeof ASK;
  id: number;
  topic: Topic;
  question: unknown;
}

interface AnswerMessage {
  type: typeof ANSWER;
  id: number;
  answer?: unknown;
  error?: string;
}

interface CollectMessage {
  type: typeof COLLECT;
  id: number;
  seconds: number;
  at: number;
}

interface CollectedMessage {
  type: typeof COLLECTED;
  id: number;
  series: LiveSeries;
}

/** In a worker: asks the primary and resolves with its answer. */
type Ask = <T extends Topic>(
  topic: T,
  question: Questions[T]['question'],
) => Promise<Questions[T]['answer']>;

let asker: Ask | null = null;

/** The worker's channel to the primary, opened once. */
function workerAsk(): Ask {
  if (asker) return asker;
  let next = 0;
  const waiting = new Map<number, (message: AnswerMessage) => void>();
  process.on('message', (message: AnswerMessage) => {
    if (message?.type === ANSWER) waiting.get(message.id)?.(message);
  });
  asker = (topic, question) =>
    new Promise((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not answer "${topic}" in time`));
      }, ASK_TIMEOUT_MS);
      waiting.set(id, (message) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (message.error === undefined) resolve(message.answer as never);
        else reject(new Error(message.error));
      });
      process.send?.({ type: ASK, id, topic, question } satisfies AskMessage);
    });
  return asker;
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
  const ask = workerAsk();
  return () => ask('metrics', {});
}

/**
 * In a worker: the storm detector of the whole LMS, which runs in the primary, so that every
 * worker's logins and evictions count toward one rate per account.
 *
 * @example
 * const watch = workerStormWatch();
 * const alerts = await watch.record('xqueue_svc', Date.now(), 1);
 */
export function workerStormWatch(): StormWatch {
  const ask = workerAsk();
  return {
    record: (account, at, evicted) => ask('storm-record', { account, at, evicted }),
    rates: (at) => ask('storm-rates', { at }),
  };
}

/**
 * In a worker: answers the primary's requests for this worker's per-second series, and returns
 * how to get the series of the whole LMS (every worker's, added up) for the dashboard.
 *
 * @example
 * const liveSeries = workerLiveSeries(metrics.live);
 * const series = await liveSeries(300, Date.now()); // logins per second of all workers
 */
export function workerLiveSeries(
  live: LiveStats,
): (seconds: number, at: number) => Promise<LiveSeries> {
  process.on('message', (message: CollectMessage) => {
    if (message?.type !== COLLECT) return;
    const series = live.series(message.seconds, message.at);
    process.send?.({ type: COLLECTED, id: message.id, series } satisfies CollectedMessage);
  });
  const ask = workerAsk();
  return (seconds, at) => ask('live-series', { seconds, at });
}

/**
 * In the primary: the reply to one message from a worker, or null when the message is not a
 * question on one of `answers`' topics.
 *
 * @example
 * const reply = replyTo(answers, message);
 * if (reply) void reply.then((answer) => worker.send(answer));
 */
export function replyTo(answers: Answers, message: unknown): Promise<AnswerMessage> | null {
  const ask = message as AskMessage | null;
  // An own property only: `in` would take `toString` or `__proto__` for a topic.
  if (ask?.type !== ASK || !Object.hasOwn(answers, ask.topic)) return null;
  const answer = answers[ask.topic] as (question: unknown) => Promise<unknown>;
  return answer(ask.question).then(
    (value) => ({ type: ANSWER, id: ask.id, answer: value }),
    (error: Error) => ({ type: ANSWER, id: ask.id, error: error.message }),
  );
}

/** True in a process `runPrimary` forked. */
export const isClusterWorker = () => cluster.isWorker;

// prom-client's cluster protocol, spoken by the primary itself: its own clusterMetrics() asks
// every connected worker, and a worker still starting has no listener yet and never answers.
const PROM_REQUEST = 'prom-client:getMetricsReq';
const PROM_RESPONSE = 'prom-client:getMetricsRes';

interface PromResponse {
  type: typeof PROM_RESPONSE;
  requestId: number;
  metrics?: unknown[];
  error?: string;
}

interface Gathering {
  responses: unknown[];
  waiting: number;
  done: (error: Error | null, text?: string) => void;
}

const gatherings = new Map<number, Gathering>();
let nextGathering = 0;
let gatherListening = false;

/** Sums the metrics of the workers that listen (each has its registry set by then). */
function gatherMetrics(listening: ReadonlySet<number>): Promise<string> {
  if (!gatherListening) {
    gatherListening = true;
    cluster.on('message', (_worker: Worker, message: PromResponse) => {
      if (message?.type !== PROM_RESPONSE) return;
      const gathering = gatherings.get(message.requestId);
      if (!gathering) return;
      if (message.error !== undefined) return gathering.done(new Error(message.error));
      gathering.responses.push(...(message.metrics ?? []));
      gathering.waiting--;
      if (gathering.waiting === 0) {
        const registry = AggregatorRegistry.aggregate(gathering.responses as never);
        registry.metrics().then((text) => gathering.done(null, text), gathering.done);
      }
    });
  }
  const workers = Object.values(cluster.workers ?? {}).filter(
    (worker): worker is Worker =>
      worker !== undefined && listening.has(worker.id) && worker.isConnected(),
  );
  return new Promise<string>((resolve, reject) => {
    const requestId = nextGathering++;
    const timer = setTimeout(
      () => gathering.done(new Error('the workers did not send their metrics in time')),
      ASK_TIMEOUT_MS,
    );
    const gathering: Gathering = {
      responses: [],
      waiting: workers.length,
      done: (error, text) => {
        clearTimeout(timer);
        gatherings.delete(requestId);
        if (error) reject(error);
        else resolve(text ?? '');
      },
    };
    gatherings.set(requestId, gathering);
    if (workers.length === 0) return gathering.done(null, '');
    for (const worker of workers) worker.send({ type: PROM_REQUEST, requestId });
  });
}

const collections = new Map<number, (message: CollectedMessage) => void>();
let nextCollection = 0;
let collectListening = false;

/** Asks every listening worker for its series of the same seconds, and adds them up. */
function collectSeries(
  listening: ReadonlySet<number>,
  seconds: number,
  at: number,
): Promise<LiveSeries> {
  if (!collectListening) {
    collectListening = true;
    cluster.on('message', (_worker: Worker, message: CollectedMessage) => {
      if (message?.type === COLLECTED) collections.get(message.id)?.(message);
    });
  }
  const workers = Object.values(cluster.workers ?? {}).filter(
    (worker): worker is Worker =>
      worker !== undefined && listening.has(worker.id) && worker.isConnected(),
  );
  return new Promise<LiveSeries>((resolve, reject) => {
    const id = nextCollection++;
    const parts: LiveSeries[] = [];
    const finish = (error: Error | null) => {
      clearTimeout(timer);
      collections.delete(id);
      if (error) reject(error);
      else resolve(mergeSeries(parts));
    };
    const timer = setTimeout(
      () => finish(new Error('the workers did not send their series in time')),
      ASK_TIMEOUT_MS,
    );
    collections.set(id, (message) => {
      parts.push(message.series);
      if (parts.length === workers.length) finish(null);
    });
    // The asking worker listens, so there is always at least one.
    for (const worker of workers)
      worker.send({ type: COLLECT, id, seconds, at } satisfies CollectMessage);
  });
}

/**
 * The primary of `LMS_WORKERS=N`: migrates the database once, forks N workers (each runs the
 * server and logs its own `listening` line), sums their metrics for `/metrics`, replaces a
 * worker that dies, and on SIGTERM or SIGINT stops them all and resolves. Until a first worker
 * listens, a worker that exits before it listens (a bad setting) stops the others: the primary
 * then rejects, and the worker has already said why. Once the LMS has served, such a worker
 * (one that gave up waiting for Redis) is replaced after a delay that doubles while its
 * replacements keep failing, and the others keep serving.
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
  const answers: Answers = {
    metrics: () => gatherMetrics(listening),
    'storm-record': ({ account, at, evicted }) => storms.record(account, at, evicted),
    'storm-rates': ({ at }) => storms.rates(at),
    'live-series': ({ seconds, at }) => collectSeries(listening, seconds, at),
  };
  let stopping = false;
  /** Some worker has listened: the settings work, so a worker that cannot start is replaced. */
  let served = false;
  /** Workers in a row that exited before they listened: the restart delay doubles with it. */
  let unstarted = 0;
  const listening = new Set<number>();
  const alive = new Set<number>();
  const restarts = new Set<NodeJS.Timeout>();

  cluster.on('message', (worker: Worker, message: unknown) => {
    void replyTo(answers, message)?.then((reply) => worker.send(reply));
  });
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

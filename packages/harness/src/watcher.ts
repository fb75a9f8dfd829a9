import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, spawnManaged } from './process.ts';
import { type Launched, SupervisedProcess, type SuperviseOptions } from './supervisor.ts';

const WATCHER_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../apps/watcher');
const WATCHER_MAIN = join(WATCHER_DIR, 'src/main.ts');
const READY_TIMEOUT_MS = 30_000;

export interface StartWatchersOptions {
  replicas: number;
  /** Watcher env (REDIS_URL, LMS_URL, ...). WATCHER_REPLICA_ID is the id base. */
  env: Record<string, string>;
  configDir?: string;
  /**
   * Restart a replica that exits on its own (not through `stopAll`, `kill` or `restart`), with
   * the same id, after a CrashLoopBackOff delay: what Kubernetes or compose `restart:` does in
   * production. Absent: a replica that exits stays down.
   */
  supervise?: SuperviseOptions;
  /** The script each replica runs with `node --import tsx`; default the watcher's src/main.ts. */
  entry?: string;
  /**
   * Start the replicas one after another, as pods of a deployment come up: replica i+1 is
   * spawned once replica i announced its metrics and `settle` resolved (e.g. its first logins
   * are done). Default: all at once.
   */
  oneByOne?: { settle(replica: StartedReplica): Promise<void> };
  /**
   * Called with every `event` line a replica prints, with the line's other fields (e.g.
   * `submissionId` of a `result-accepted`), as it arrives; the counting in `events` goes on.
   */
  onEvent?: (event: WatcherEventLine) => void;
}

/** One `event` line of a replica, as {@link StartWatchersOptions.onEvent} receives it. */
export interface WatcherEventLine {
  event: string;
  replicaId: string;
  /** The process of the incarnation that printed it. */
  pid: number;
  /** When the harness read it (`Date.now()`). */
  atMs: number;
  /** The line's JSON fields other than `event`. */
  fields: Record<string, unknown>;
}

/** What `oneByOne.settle` knows of the replica that just started. */
export interface StartedReplica {
  metricsUrl: string;
  /** The `event` lines this incarnation printed so far, by event; updated as lines arrive. */
  events: Readonly<Record<string, number>>;
}

/** A fleet of watcher replicas, each its own process (so a test can SIGKILL one). */
export interface WatcherFleet {
  /** `replicas[i]` is replica i's current incarnation. */
  replicas: ManagedProcess[];
  /**
   * `metricsUrls[i]` serves the Prometheus metrics of replica i's current incarnation; empty
   * while an incarnation has not announced its URL yet (it died before, or is starting).
   */
  metricsUrls: string[];
  replicaIds: string[];
  /** Incarnations started by the supervisor after a replica exited on its own. */
  readonly restarts: number;
  /**
   * How many lines of each `event` the replicas printed, over every incarnation, e.g.
   * `{ 'connection-died': 3, 'login-timeout': 5, 'replica-exit': 1 }`.
   */
  readonly events: Readonly<Record<string, number>>;
  /** Stops every replica and every pending restart. */
  stopAll(signal?: NodeJS.Signals): Promise<void>;
  /** Sends `signal` to replica `index` and waits for it to exit; the supervisor leaves it down. */
  kill(index: number, signal: NodeJS.Signals): Promise<void>;
  /** Stops replica `index` (if it runs) and starts a new incarnation now. */
  restart(index: number): Promise<void>;
}

interface LogLine {
  msg?: unknown;
  url?: unknown;
  event?: unknown;
  [field: string]: unknown;
}

function parseLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return undefined;
  }
}

/**
 * Spawns one incarnation of a replica. It is ready when it logs "metrics listening"; it counts
 * the `event` lines it prints into `events`.
 */
function launchReplica(
  replicaId: string,
  options: StartWatchersOptions,
  events: Record<string, number>,
  own: Record<string, number>,
): Launched<string> {
  let announce: (url: string) => void = () => undefined;
  const announced = new Promise<string>((resolve) => {
    announce = resolve;
  });
  let saidReplicaExit = false;
  const env = {
    WATCHER_METRICS_PORT: '0',
    ...options.env,
    ...(options.configDir ? { WATCHER_CONFIG_DIR: options.configDir } : {}),
    WATCHER_REPLICA_ID: replicaId,
  };
  // `node --import tsx` keeps the replica a single process: a signal reaches the watcher itself.
  const child: ManagedProcess = spawnManaged(
    process.execPath,
    ['--import', 'tsx', options.entry ?? WATCHER_MAIN],
    {
      cwd: WATCHER_DIR,
      env,
      onLine: (line) => {
        const entry = parseLine(line);
        if (!entry) return;
        if (typeof entry.event === 'string') {
          events[entry.event] = (events[entry.event] ?? 0) + 1;
          own[entry.event] = (own[entry.event] ?? 0) + 1;
          if (entry.event === 'replica-exit') saidReplicaExit = true;
          const { event, ...fields } = entry;
          options.onEvent?.({ event, replicaId, pid: child.pid, atMs: Date.now(), fields });
        }
        if (entry.msg === 'metrics listening' && typeof entry.url === 'string') {
          announce(entry.url);
        }
      },
    },
  );
  // 'close' comes after the last stdout line, so the lines are counted when this settles.
  const closed = new Promise<void>((resolve) => child.child.once('close', () => resolve()));
  const exitedEarly = closed.then(async () => {
    const { code, signal } = await child.exited;
    throw new Error(
      `watcher ${replicaId} exited early (code ${code}, signal ${signal}):\n${child.output()}`,
    );
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new Error(`watcher ${replicaId} not ready in ${READY_TIMEOUT_MS} ms:\n${child.output()}`),
      );
      void child.stop('SIGKILL');
    }, READY_TIMEOUT_MS);
  });
  const ready = Promise.race([announced, exitedEarly, timeout]).finally(() => clearTimeout(timer));
  // The watcher prints replica-exit only when it stops itself at run time (a connection died);
  // a bad environment or config exits 2 without it, and no restart can cure that.
  return { process: child, ready, diedAtRunTime: () => saidReplicaExit };
}

/**
 * Starts `replicas` watcher processes (ids `<WATCHER_REPLICA_ID or "watcher">-1..N`, metrics on
 * free ports unless WATCHER_METRICS_PORT is set) and waits until each serves its metrics. With
 * `supervise`, a replica that dies at run time before it is ready leaves its URL empty and is
 * restarted; one that cannot start at all (it exits without `replica-exit`, e.g. a bad
 * environment) fails the call, with or without supervision.
 *
 * @example
 * const fleet = await startWatchers({
 *   replicas: 3,
 *   env: { REDIS_URL, LMS_URL, ... },
 *   supervise: { backoffBaseMs: 10_000, backoffMaxMs: 300_000 },
 *   onEvent: ({ event, pid, fields }) => { if (event === 'result-accepted') ... },
 * });
 * try { ... fleet.restarts, fleet.events['connection-died'] ... } finally { await fleet.stopAll(); }
 */
export async function startWatchers(options: StartWatchersOptions): Promise<WatcherFleet> {
  const base = options.env.WATCHER_REPLICA_ID ?? 'watcher';
  const replicaIds = Array.from({ length: options.replicas }, (_, i) => `${base}-${i + 1}`);
  const events: Record<string, number> = {};
  const replicas: ManagedProcess[] = [];
  const metricsUrls = replicaIds.map(() => '');
  const ownEvents: Record<string, number>[] = replicaIds.map(() => ({}));
  const slots = replicaIds.map(
    (id, index) =>
      new SupervisedProcess<string>({
        supervise: options.supervise,
        launch: () => {
          ownEvents[index] = {};
          const launched = launchReplica(id, options, events, ownEvents[index]);
          replicas[index] = launched.process;
          metricsUrls[index] = '';
          return launched;
        },
        onReady: (url) => {
          metricsUrls[index] = url;
        },
      }),
  );
  const settled = options.oneByOne
    ? await startOneByOne(
        slots,
        (index) => ({
          metricsUrl: metricsUrls[index] ?? '',
          events: ownEvents[index] ?? {},
        }),
        options.oneByOne.settle,
      )
    : await Promise.allSettled(slots.map((slot) => slot.start()));
  const failure = settled.find((result) => result.status === 'rejected');
  if (failure) {
    await Promise.all(slots.map((slot) => slot.stop('SIGKILL')));
    throw failure.reason;
  }
  const slotAt = (index: number) => {
    const slot = slots[index];
    if (!slot) throw new Error(`no replica ${index}; there are ${slots.length}`);
    return slot;
  };
  return {
    replicas,
    metricsUrls,
    replicaIds,
    get restarts() {
      return slots.reduce((total, slot) => total + slot.restarts, 0);
    },
    events,
    async stopAll(signal = 'SIGTERM') {
      await Promise.all(slots.map((slot) => slot.stop(signal, 15_000)));
    },
    async kill(index, signal) {
      await slotAt(index).kill(signal);
    },
    async restart(index) {
      await slotAt(index).replace(15_000);
    },
  };
}

async function startOneByOne(
  slots: readonly SupervisedProcess<string>[],
  started: (index: number) => StartedReplica,
  settle: (replica: StartedReplica) => Promise<void>,
): Promise<PromiseSettledResult<unknown>[]> {
  const results: PromiseSettledResult<unknown>[] = [];
  for (const [index, slot] of slots.entries()) {
    try {
      await slot.start();
      await settle(started(index));
      results.push({ status: 'fulfilled', value: undefined });
    } catch (reason) {
      results.push({ status: 'rejected', reason });
      break;
    }
  }
  return results;
}

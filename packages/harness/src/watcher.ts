import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, spawnManaged } from './process.ts';

const WATCHER_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../apps/watcher');
const WATCHER_MAIN = join(WATCHER_DIR, 'src/main.ts');
const READY_TIMEOUT_MS = 30_000;

export interface StartWatchersOptions {
  replicas: number;
  /** Watcher env (REDIS_URL, LMS_URL, ...). WATCHER_REPLICA_ID is the id base. */
  env: Record<string, string>;
  configDir?: string;
}

/** A fleet of watcher replicas, each its own process (so a test can SIGKILL one). */
export interface WatcherFleet {
  replicas: ManagedProcess[];
  /** `metricsUrls[i]` serves replica i's Prometheus metrics. */
  metricsUrls: string[];
  replicaIds: string[];
  stopAll(signal?: NodeJS.Signals): Promise<void>;
  kill(index: number, signal: NodeJS.Signals): Promise<void>;
  restart(index: number): Promise<void>;
}

function metricsUrlOf(line: string): string | undefined {
  if (!line.includes('metrics listening')) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    return entry.msg === 'metrics listening' ? entry.url : undefined;
  } catch {
    return undefined;
  }
}

async function startOne(
  replicaId: string,
  options: StartWatchersOptions,
): Promise<{ process: ManagedProcess; metricsUrl: string }> {
  let announce: (url: string) => void = () => undefined;
  const ready = new Promise<string>((resolve) => {
    announce = resolve;
  });
  const env = {
    WATCHER_METRICS_PORT: '0',
    ...options.env,
    ...(options.configDir ? { WATCHER_CONFIG_DIR: options.configDir } : {}),
    WATCHER_REPLICA_ID: replicaId,
  };
  // `node --import tsx` keeps the replica a single process: a signal reaches the watcher itself.
  const child = spawnManaged(process.execPath, ['--import', 'tsx', WATCHER_MAIN], {
    cwd: WATCHER_DIR,
    env,
    onLine: (line) => {
      const url = metricsUrlOf(line);
      if (url) announce(url);
    },
  });
  const exited = child.exited.then(({ code, signal }) => {
    throw new Error(
      `watcher ${replicaId} exited early (code ${code}, signal ${signal}):\n${child.output()}`,
    );
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`watcher ${replicaId} not ready in ${READY_TIMEOUT_MS} ms:\n${child.output()}`),
        ),
      READY_TIMEOUT_MS,
    );
  });
  try {
    const metricsUrl = await Promise.race([ready, exited, timeout]);
    return { process: child, metricsUrl };
  } catch (error) {
    await child.stop('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
    exited.catch(() => undefined);
  }
}

/**
 * Starts `replicas` watcher processes (ids `<WATCHER_REPLICA_ID or "watcher">-1..N`, metrics on
 * free ports unless WATCHER_METRICS_PORT is set) and waits until each serves its metrics.
 *
 * @example
 * const fleet = await startWatchers({ replicas: 3, env: { REDIS_URL, LMS_URL, ... } });
 * try { await fleet.kill(0, 'SIGKILL'); } finally { await fleet.stopAll(); }
 */
export async function startWatchers(options: StartWatchersOptions): Promise<WatcherFleet> {
  const base = options.env.WATCHER_REPLICA_ID ?? 'watcher';
  const replicaIds = Array.from({ length: options.replicas }, (_, i) => `${base}-${i + 1}`);
  const settled = await Promise.allSettled(replicaIds.map((id) => startOne(id, options)));
  const started = settled.flatMap((result) =>
    result.status === 'fulfilled' ? [result.value] : [],
  );
  const failure = settled.find((result) => result.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((one) => one.process.stop('SIGKILL')));
    throw failure.reason;
  }
  const replicas = started.map((one) => one.process);
  const metricsUrls = started.map((one) => one.metricsUrl);
  return {
    replicas,
    metricsUrls,
    replicaIds,
    async stopAll(signal = 'SIGTERM') {
      await Promise.all(replicas.map((replica) => replica.stop(signal, 15_000)));
    },
    async kill(index, signal) {
      const replica = replicas[index];
      if (!replica) throw new Error(`no replica ${index}; there are ${replicas.length}`);
      replica.child.kill(signal);
      await replica.exited;
    },
    async restart(index) {
      const replica = replicas[index];
      const id = replicaIds[index];
      if (!replica || !id) throw new Error(`no replica ${index}; there are ${replicas.length}`);
      await replica.stop('SIGTERM', 15_000);
      const fresh = await startOne(id, options);
      replicas[index] = fresh.process;
      metricsUrls[index] = fresh.metricsUrl;
    },
  };
}

import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type ManagedProcess, spawnManaged, waitFor } from './process.ts';

export interface LocalRedis {
  url: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
  });
}

/**
 * Starts a private `redis-server` on a free loopback port, with nothing persisted, in its own
 * temporary directory. Throws with a hint when `redis-server` is not installed.
 *
 * @example
 * const redis = await startRedis();
 * try { ... redis.url ... } finally { await redis.stop(); }
 */
export async function startRedis(
  options: { binary?: string; port?: number } = {},
): Promise<LocalRedis> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'storm-redis-'));
  const binary = options.binary ?? 'redis-server';
  let child: ManagedProcess;
  try {
    child = spawnManaged(binary, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction', // BullMQ requires it
    ]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `${binary} not found: install it (apt-get install redis-server) or set REDIS_URL`,
      { cause: error },
    );
  }
  const failed = child.exited.then(({ code }) => {
    throw new Error(
      `redis-server exited early (code ${code}); is it installed? (apt-get install redis-server)\n${child.output()}`,
    );
  });
  try {
    await Promise.race([
      waitFor(async () => ((await ping(port)) ? true : undefined), { what: `redis on ${port}` }),
      failed,
    ]);
  } catch (error) {
    await child.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  failed.catch(() => undefined);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    async stop() {
      await child.stop('SIGTERM', 3_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis to use: the one at a given URL, or a private one started for the caller. */
export interface RedisHandle {
  url: string;
  /** True when this process started it (and `stop` stops it). */
  owned: boolean;
  stop(): Promise<void>;
}

/**
 * Uses the Redis at `url` when one is given (`stop` then leaves it alone), else starts a
 * private `redis-server` on a free port.
 *
 * @example
 * const redis = await useRedis(process.env.REDIS_URL);
 */
export async function useRedis(url?: string): Promise<RedisHandle> {
  if (url) return { url, owned: false, stop: async () => undefined };
  const local = await startRedis();
  return { url: local.url, owned: true, stop: () => local.stop() };
}

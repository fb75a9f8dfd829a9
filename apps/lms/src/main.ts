import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createApp } from './app.ts';
import { runPrimary } from './cluster/primary.ts';
import { isClusterWorker } from './cluster/worker.ts';
import { whenNotBusy } from './db/busy-retry.ts';
import { openDatabase, SERVER_BUSY_TIMEOUT_MS } from './db/client.ts';
import { EnvError, type LmsConfig, readEnv } from './env.ts';
import { createLogger } from './ops/logger.ts';
import { recordSessionStore } from './sessions/factory.ts';

/** A running server and how to stop it. */
export interface RunningServer {
  url: string;
  /** Stops accepting, finishes in-flight requests, closes the database. */
  close(): Promise<void>;
}

// In-flight requests get this long after SIGTERM before connections are cut.
const SHUTDOWN_GRACE_MS = 10_000;
const IDLE_REAP_INTERVAL_MS = 50;
/**
 * How long an LMS_WORKERS worker waits for the session Redis before it gives up and exits (the
 * primary then starts another, later): the replacement of a worker that died during an outage.
 */
const WORKER_REDIS_WAIT_MS = 10_000;

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** How long to wait for a session Redis that cannot be reached at once; 0 (default): fail. */
  redisWaitMs?: number;
}

/** A Redis URL without its password, for messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/** Connects `redis`, waiting up to `waitMs` for it to answer; rejects with the first error. */
async function connectWithin(redis: Redis, waitMs: number, onWait: () => void): Promise<void> {
  try {
    await redis.connect();
  } catch (error) {
    if (waitMs <= 0) throw error;
    onWait();
    // ioredis keeps reconnecting on its own, backing off (50 ms more each time, 2 s at most).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        redis.off('ready', ready);
        reject(error);
      }, waitMs);
      const ready = () => {
        clearTimeout(timer);
        resolve();
      };
      redis.once('ready', ready);
    });
  }
}

/**
 * The session Redis of SESSION_STORE=redis, connected (null for another store). Waits up to
 * `waitMs` for a Redis that cannot be reached at once, then throws an EnvError that says which.
 */
async function connectSessionRedis(
  config: LmsConfig,
  logger: Logger,
  waitMs: number,
): Promise<Redis | null> {
  if (config.sessionStore.kind !== 'redis') return null;
  const { url } = config.sessionStore;
  // Auto-pipelining: the commands of concurrent requests leave in one write and come back in
  // one read, fewer system calls for this worker and for Redis (the order stays the same).
  const redis = new Redis(url, {
    maxRetriesPerRequest: 2,
    lazyConnect: true,
    enableAutoPipelining: true,
  });
  redis.on('error', (error) => logger.warn({ err: error }, 'session store: Redis error'));
  // Printed at any LOG_LEVEL, as the lifecycle lines are.
  const waiting = () =>
    logger
      .child({}, { level: 'info' })
      .warn(
        { redis: redactUrl(url), waitMs, pid: process.pid },
        'session store: Redis cannot be reached yet; waiting for it before listening',
      );
  try {
    await connectWithin(redis, waitMs, waiting);
  } catch (error) {
    redis.disconnect();
    throw new EnvError(
      `SESSION_STORE=redis, but Redis at ${redactUrl(url)} cannot be reached (${(error as Error).message}): start it, or set SESSION_REDIS_URL / REDIS_URL`,
    );
  }
  return redis;
}

function publicHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Opens the database (migrating it), builds the app and listens. Logs one `listening` line
 * with the URL, which the harness waits for (and, under LMS_WORKERS, the primary counts).
 *
 * @example
 * const server = await startServer(parseEnv({ PORT: '0' }, process.cwd()), logger);
 */
export async function startServer(
  config: LmsConfig,
  logger: Logger,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  // Lifecycle lines are printed at any LOG_LEVEL: the harness waits for `listening`.
  const lifecycle = logger.child({}, { level: 'info' });
  // A tiny synchronous busy timeout: waiting for another process's lock would freeze the event
  // loop; the tick batcher waits on timers instead.
  const database = openDatabase({
    path: config.databasePath,
    busyTimeoutMs: SERVER_BUSY_TIMEOUT_MS,
    synchronous: config.sqliteSynchronous,
  });
  // SESSION_STORE=redis: sessions in Redis, as Django's cache session backend keeps them.
  const redisConfig = config.sessionStore.kind === 'redis' ? config.sessionStore : null;
  let redis: Redis | null;
  try {
    redis = await connectSessionRedis(config, logger, options.redisWaitMs ?? 0);
  } catch (error) {
    database.close();
    throw error;
  }
  const closeStores = () => {
    redis?.disconnect();
    database.close();
  };
  try {
    // The command line acts on the sessions this server keeps, whatever its shell says.
    await whenNotBusy(() => recordSessionStore(database.db, config.sessionStore, Date.now()));
  } catch (error) {
    closeStores();
    throw error;
  }
  const app = createApp({
    db: database.db,
    logger,
    config,
    ...(redis && redisConfig && { sessionRedis: { client: redis, prefix: redisConfig.prefix } }),
    clusterWorker: isClusterWorker(),
  });
  return new Promise((resolve, reject) => {
    const options = { fetch: app.fetch, port: config.port, hostname: config.host };
    // Without createServer options @hono/node-server makes a plain node:http server.
    const server = serve(options, (info: AddressInfo) => {
      const url = `http://${publicHost(config.host)}:${info.port}`;
      lifecycle.info(
        {
          url,
          port: info.port,
          database: config.databasePath,
          sessionStore: config.sessionStore.kind,
          pid: process.pid,
        },
        'listening',
      );
      resolve({
        url,
        close: () =>
          new Promise<void>((done) => {
            const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
            // Keep-alive sockets would hold close() open until they time out: close each one
            // as soon as it is idle, i.e. once its in-flight request has been answered.
            const reap = setInterval(() => server.closeIdleConnections(), IDLE_REAP_INTERVAL_MS);
            server.close(() => {
              clearTimeout(force);
              clearInterval(reap);
              closeStores();
              done();
            });
            server.closeIdleConnections();
          }),
      });
    }) as Server;
    server.once('error', (error) => {
      closeStores();
      reject(error);
    });
  });
}

/**
 * Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
 *
 * @example
 * await runUntilSignal(readEnv());
 */
export async function runUntilSignal(config: LmsConfig): Promise<void> {
  const logger = createLogger(config.logLevel, process.stdout.isTTY === true);
  // LMS_WORKERS > 1: this process forks the workers and waits; each worker comes back here.
  if (config.workers > 1 && !isClusterWorker()) {
    // An unreachable Redis at start is a setting to fix: say so at once, as one process does,
    // not after every worker has waited for it.
    (await connectSessionRedis(config, logger, 0))?.disconnect();
    return runPrimary(config, logger);
  }
  // The handler is there before the `listening` line, so a signal just after it (a process
  // descheduled there on a busy machine) stops the server instead of killing the process; one
  // that comes while the server starts still ends the process at once, as with no handler.
  let stop: ((signal: NodeJS.Signals) => void) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop) stop(signal);
    else process.kill(process.pid, signal); // `once`: the handler is gone, so the default acts
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let server: RunningServer;
  try {
    // A worker may be the replacement of one that died while Redis was down: it waits for it.
    const redisWaitMs = isClusterWorker() ? WORKER_REDIS_WAIT_MS : 0;
    server = await startServer(config, logger, { redisWaitMs });
  } catch (error) {
    // A worker that cannot start exits, and the primary starts another. Its channel to the
    // primary would keep it alive, neither serving nor exiting: unreferenced, it lets the
    // process end once it has said why, with the command's exit code.
    if (isClusterWorker()) process.channel?.unref();
    throw error;
  }
  const lifecycle = logger.child({}, { level: 'info' });
  await new Promise<void>((resolve) => {
    stop = (signal: NodeJS.Signals) => {
      lifecycle.info({ signal }, 'shutting down');
      void server.close().then(() => {
        lifecycle.info('stopped');
        // A worker's channel to the primary would keep it alive: closing it lets it exit.
        if (isClusterWorker()) process.disconnect();
        resolve();
      });
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runUntilSignal(readEnv());
}

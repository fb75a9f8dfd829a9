import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { serve } from '@hono/node-server';
import { type PolicySettingsInput, parseSettings } from '@storm-lab/session-policy';
import type { Hono } from 'hono';
import { Redis } from 'ioredis';
import pino from 'pino';
import { type AppConfig, createApp } from '../app.ts';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import type { LmsEnv } from '../http/context.ts';
import { SEED_DEFAULTS, type SeedOptions, seed } from '../seed.ts';
import { createSessionStore } from '../sessions/factory.ts';
import type { SessionStore } from '../sessions/store.ts';
import { appFetcher, type Fetcher, urlFetcher } from './client.ts';

/** Iterations for test hashes: fast, yet the same code path as production. */
export const TEST_ITERATIONS = 1000;

/** A clock tests move by hand, so lock expiry needs no sleeping. */
export interface TestClock {
  now: () => number;
  advance: (ms: number) => void;
}

export function createTestClock(start = Date.UTC(2025, 0, 1)): TestClock {
  let at = start;
  return {
    now: () => at,
    advance: (ms) => {
      at += ms;
    },
  };
}

export interface TestLmsOptions {
  policy?: PolicySettingsInput;
  config?: Partial<Omit<AppConfig, 'policy'>>;
  seed?: Partial<SeedOptions>;
  /** Database file; default `:memory:`. */
  path?: string;
  busyTimeoutMs?: number;
  /** `socket` serves the app on a loopback port and sends requests over real HTTP. */
  transport?: Transport;
  /** Keep sessions in the Redis at this URL (`SESSION_STORE=redis`), under a fresh prefix. */
  redisUrl?: string | undefined;
}

/** How tests reach the app: in process through `app.request()`, or over a real socket. */
export type Transport = 'app' | 'socket';

/** Both transports, for `describe.each`. */
export const TRANSPORTS: readonly Transport[] = ['app', 'socket'];

export interface TestLms {
  app: Hono<LmsEnv>;
  database: LmsDatabase;
  /** What the app was built with, for a second app on the same database file. */
  config: AppConfig;
  clock: TestClock;
  /** Parsed pino lines the app logged. */
  logs: Record<string, unknown>[];
  /** Sends requests through the chosen transport. */
  fetcher: Fetcher;
  /** A second view of the app's sessions (same database, same Redis keys), for assertions. */
  sessions: SessionStore;
  close: () => Promise<void>;
}

/**
 * A fresh LMS on its own SQLite database, seeded with the lab defaults (queue `test-queue`,
 * `xqueue_svc` in group `xqueue`, `student1..5`, `staff`), with a hand-moved clock.
 *
 * @example
 * const lms = await createTestLms({ policy: { exemptGroups: ['xqueue'] } });
 */
export async function createTestLms(options: TestLmsOptions = {}): Promise<TestLms> {
  const database = openDatabase({
    path: options.path ?? ':memory:',
    busyTimeoutMs: options.busyTimeoutMs,
  });
  const clock = createTestClock();
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  await seed(
    database.db,
    { ...SEED_DEFAULTS, ...options.seed },
    { iterations: TEST_ITERATIONS, now: clock.now() },
  );
  const config: AppConfig = {
    policy: parseSettings(options.policy ?? {}),
    passwordHashIterations: TEST_ITERATIONS,
    xqueueLockSeconds: 300,
    xqueueMaxFailures: 0,
    sessionTtlSeconds: 1_209_600,
    stormAlertEvictionsPerMinute: 30,
    maxBodyBytes: 1_048_576,
    ...options.config,
  };
  const logger = pino({ level: 'info' }, sink);
  // A prefix of its own: tests may share one Redis (REDIS_URL).
  const redis = options.redisUrl
    ? { client: new Redis(options.redisUrl), prefix: `lms-${randomBytes(6).toString('hex')}:` }
    : null;
  const app = createApp({
    db: database.db,
    config,
    logger,
    now: clock.now,
    ...(redis && { sessionRedis: redis }),
  });
  const sessions = createSessionStore(redis ? { kind: 'redis', ...redis } : { kind: 'sqlite' }, {
    db: database.db,
    ttlMs: config.sessionTtlSeconds * 1000,
    now: clock.now,
  });
  const server = options.transport === 'socket' ? await listen(app) : null;
  const fetcher = server ? urlFetcher(server.url) : appFetcher(app);
  const close = async () => {
    await server?.close();
    redis?.client.disconnect();
    database.close();
  };
  return { app, database, config, clock, logs, fetcher, sessions, close };
}

/**
 * Serves an app on a free loopback port in this process, for tests that need real sockets.
 *
 * @example
 * const server = await listen(lms.app);
 * try { await fetch(`${server.url}/healthz`); } finally { await server.close(); }
 */
export function listen(app: Hono<LmsEnv>): Promise<{ url: string; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as Server).closeAllConnections();
          }),
      });
    });
  });
}

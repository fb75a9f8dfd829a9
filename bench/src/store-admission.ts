import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTickBatcher,
  type LmsDatabase,
  openDatabase,
  openSessionStore,
  SEED_DEFAULTS,
  seed,
} from '@storm-lab/lms';
import { loginAdmission, parseSettings, type SessionRegistry } from '@storm-lab/session-policy';
import { createRedisSessionRegistry } from '@storm-lab/session-policy/redis';
import { Redis } from 'ioredis';
import { percentile } from './load.ts';

/**
 * What admits: the LMS's store on SQLite (one transaction: session, slot, last_login), the LMS's
 * store on Redis (the atomic step in Redis, then slot, last_login and tombstones in SQLite), or
 * session-policy's Redis registry alone (the atomic step only): deciding in one script, as the
 * LMS does, or reading, deciding in JavaScript and committing with a version check.
 */
export type AdmissionTarget = 'sqlite' | 'redis' | 'redis-registry' | 'redis-registry-optimistic';

/** Rounds run and not timed first: Redis loads its scripts, SQLite its statements, V8 compiles. */
const WARM_UP_ROUNDS = 5;

/** Admission latency without HTTP or hashing, timed in this process. */
export interface StoreAdmissionFigures {
  target: AdmissionTarget;
  accounts: 'one' | 'many';
  parallel: number;
  rounds: number;
  admissions: number;
  /** Exact, from every admission's own time (call to answer). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const ms = (value: number) => Math.round(value * 1000) / 1000;

function open(target: AdmissionTarget, redisUrl: string, database: LmsDatabase) {
  const prefix = `bench-store-${process.pid}-${Date.now()}:`;
  if (target === 'redis-registry' || target === 'redis-registry-optimistic') {
    const redis = new Redis(redisUrl);
    const decideInRedis = target === 'redis-registry';
    return {
      registry: createRedisSessionRegistry(redis, { prefix, decideInRedis }) as SessionRegistry,
      close: () => redis.disconnect(),
    };
  }
  // As the server builds it: the Redis store's SQLite writes go through the tick batcher (one
  // commit per event-loop turn); the SQLite store's admission is its own transaction.
  const batch = createTickBatcher(database.sqlite, { busyDeadlineMs: 5_000 });
  const opened = openSessionStore(
    {
      sessionStore:
        target === 'redis' ? { kind: 'redis', url: redisUrl, prefix } : { kind: 'sqlite' },
      sessionTtlSeconds: 3600,
      enforcement: 'atomic',
    },
    database.db,
    { write: (op) => batch.write(op) },
  );
  return { registry: opened.store as SessionRegistry, close: opened.close };
}

/**
 * `rounds` rounds of `parallel` admissions started at once (after {@link WARM_UP_ROUNDS} rounds
 * of warm-up), each timed from its call to its answer; the LMS's
 * stores run on a real SQLite file with the server's settings (a commit fsyncs) and Redis at
 * `redisUrl`. With one account every admission is the same single-session user, so each evicts
 * the one before and waits for it; with many, each its own user.
 */
export async function storeAdmission(options: {
  target: AdmissionTarget;
  redisUrl: string;
  accounts: 'one' | 'many';
  parallel: number;
  rounds: number;
}): Promise<StoreAdmissionFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-admission-'));
  const database = openDatabase({ path: join(dir, 'lms.db') });
  const { registry, close } = open(options.target, options.redisUrl, database);
  try {
    await seed(
      database.db,
      { ...SEED_DEFAULTS, students: options.parallel },
      { iterations: 1000, now: Date.now() },
    );
    const rows = database.sqlite.prepare('SELECT id, username FROM users').all() as {
      id: string;
      username: string;
    }[];
    const ids = new Map(rows.map((row) => [row.username, row.id]));
    const settings = parseSettings({});
    const times: number[] = [];
    let next = 0;
    for (let round = -WARM_UP_ROUNDS; round < options.rounds; round++) {
      await Promise.all(
        Array.from({ length: options.parallel }, async (_, index) => {
          const username = options.accounts === 'one' ? 'student1' : `student${index + 1}`;
          const userId = ids.get(username);
          if (userId === undefined) throw new Error(`no user ${username}`);
          const sessionId = `bench-${next++}`;
          const now = Date.now();
          const started = performance.now();
          await registry.admit({
            userId,
            session: { id: sessionId, instanceId: null, createdAt: now },
            // Read by the LMS's stores (LoginAdmitRequest), ignored by the registry.
            ...{ lastLoginAt: now },
            // As the LMS's login: the decision as a function and as data (Redis decides in one script).
            ...loginAdmission(
              settings,
              { username, groups: [] },
              { sessionId, instanceId: null, now },
            ),
          });
          if (round >= 0) times.push(performance.now() - started);
        }),
      );
    }
    times.sort((a, b) => a - b);
    return {
      target: options.target,
      accounts: options.accounts,
      parallel: options.parallel,
      rounds: options.rounds,
      admissions: times.length,
      p50Ms: ms(percentile(times, 50)),
      p99Ms: ms(percentile(times, 99)),
      maxMs: ms(times.at(-1) ?? Number.NaN),
    };
  } finally {
    close();
    database.close();
    await rm(dir, { recursive: true, force: true });
  }
}

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type RedisHandle, useRedis } from '@storm-lab/harness';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AdmissionConflictError,
  createRedisSessionRegistry,
  DEFAULT_EVICTION_RECORD_TTL_MS,
  DEFAULT_SESSION_TTL_MS,
} from './redis-registry.ts';
import type { AdmitResult, SessionRecord, SessionRegistry } from './registry.ts';
import { loginThrough, runSessionRegistryConformance } from './testing/index.ts';

// The CRC16 slot function ioredis routes Cluster commands with, reached through ioredis.
const keySlot = createRequire(createRequire(import.meta.url).resolve('ioredis'))(
  'cluster-key-slot',
) as (key: string) => number;

const RUN_PREFIX = `sp-test-${randomUUID().slice(0, 8)}:`;
const MINUTE_MS = 60_000;
let server: RedisHandle | undefined;
let redis: Redis;
let prefixes = 0;
let connections: Redis[] = [];

function freshPrefix(): string {
  prefixes += 1;
  return `${RUN_PREFIX}${prefixes}:`;
}

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.sort();
}

/** Polls `read` until `done` holds or the deadline passes, and returns the last value. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(20);
  }
}

function ids(sessions: readonly { id: string }[]): string[] {
  return sessions.map((session) => session.id);
}

/** A second connection, for a registry that must not share the test's pipeline. */
function connect(options: RedisOptions = {}): Redis {
  const connection = new Redis(server?.url ?? '', options);
  connections.push(connection);
  return connection;
}

/** Runs `hook` each time `decide` is called, just before it decides. */
function beforeDecide(registry: SessionRegistry, hook: () => void): SessionRegistry {
  return {
    ...registry,
    admit: (request) =>
      registry.admit({
        ...request,
        decide: (live) => {
          hook();
          return request.decide(live);
        },
      }),
  };
}

beforeAll(async () => {
  server = await useRedis(process.env.REDIS_URL);
  redis = new Redis(server.url);
});

afterAll(async () => {
  if (redis) {
    const keys = await keysUnder(RUN_PREFIX);
    for (let at = 0; at < keys.length; at += 500) await redis.del(...keys.slice(at, at + 500));
    await redis.quit();
  }
  await server?.stop();
});

const prefixOf = new WeakMap<SessionRegistry, string>();

runSessionRegistryConformance({
  name: 'Redis registry',
  create: () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    prefixOf.set(registry, prefix);
    return registry;
  },
  processes: {
    module: fileURLToPath(new URL('./testing/redis-process-registry.ts', import.meta.url)),
    config: (registry) => ({ url: server?.url, prefix: prefixOf.get(registry) }),
  },
  pools: true,
});

describe('Redis session registry', () => {
  afterEach(async () => {
    await Promise.all(connections.map((connection) => connection.quit()));
    connections = [];
  });

  it('lists every live session oldest first, then by id, with instance, tracking and pool', async () => {
    const registry = createRedisSessionRegistry(redis, { prefix: freshPrefix() });
    const unlimited = { preventConcurrentLogins: false };
    const pooled = { rules: [{ match: { path: 'xqueue' } }] };
    await loginThrough(registry, { settings: unlimited, sessionId: 'b', at: 2000 });
    await loginThrough(registry, { sessionId: 'c', at: 2000, instanceId: 'worker-a' });
    await loginThrough(registry, { settings: unlimited, sessionId: 'a', at: 3000 });
    await loginThrough(registry, { settings: pooled, sessionId: 'd', at: 4000, path: '/xqueue/' });
    const expected: SessionRecord[] = [
      {
        id: 'b',
        userId: 'alice',
        createdAt: 2000,
        instanceId: null,
        tracked: false,
        pool: 'default',
      },
      {
        id: 'c',
        userId: 'alice',
        createdAt: 2000,
        instanceId: 'worker-a',
        tracked: true,
        pool: 'default',
      },
      {
        id: 'a',
        userId: 'alice',
        createdAt: 3000,
        instanceId: null,
        tracked: false,
        pool: 'default',
      },
      {
        id: 'd',
        userId: 'alice',
        createdAt: 4000,
        instanceId: null,
        tracked: true,
        pool: 'path:xqueue',
      },
    ];
    expect(await registry.list('alice')).toEqual(expected);
  });

  it('reads a session recorded before pools as one of the default pool', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    const pooled = { rules: [{ match: { path: 'xqueue' } }] };
    await loginThrough(registry, { settings: pooled, sessionId: 'old', at: 1000 });
    // As the registry wrote a session before pools: the same hash, without the pool field.
    expect(await redis.hdel(`${prefix}{u:alice}:s:old`, 'pool')).toBe(1);
    expect(await registry.list('alice')).toMatchObject([{ id: 'old', pool: 'default' }]);
    const api = await loginThrough(registry, {
      settings: pooled,
      sessionId: 'api',
      path: '/xqueue/',
    });
    expect(api).toMatchObject({ admitted: true, evicted: [] });
    const browser = await loginThrough(registry, { settings: pooled, sessionId: 'browser' });
    expect(browser).toMatchObject({ admitted: true, evicted: [{ id: 'old' }] });
    expect(await redis.hget(`${prefix}{u:alice}:s:api`, 'pool')).toBe('path:xqueue');
  });

  it('expires sessions after sessionTtlMs, ignores them and prunes them from the index', async () => {
    const prefix = freshPrefix();
    const brief = createRedisSessionRegistry(redis, { prefix, sessionTtlMs: 800 });
    const lasting = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(brief, { sessionId: 'brief' });
    await loginThrough(lasting, {
      sessionId: 'kept',
      settings: { preventConcurrentLogins: false },
    });
    expect(await redis.pttl(`${prefix}{u:alice}:s:brief`)).toBeGreaterThan(0);
    expect(await redis.pttl(`${prefix}{u:alice}:s:brief`)).toBeLessThanOrEqual(800);
    // Django's SESSION_COOKIE_AGE, two weeks, as a known figure rather than the constant.
    expect(DEFAULT_SESSION_TTL_MS).toBe(1_209_600_000);
    expect(await redis.pttl(`${prefix}{u:alice}:s:kept`)).toBeGreaterThan(
      DEFAULT_SESSION_TTL_MS - MINUTE_MS,
    );

    const live = await eventually(
      () => lasting.list('alice'),
      (sessions) => sessions.length === 1,
    );
    expect(ids(live)).toEqual(['kept']);
    expect(await redis.zrange(`${prefix}{u:alice}:sessions`, '0', '-1')).toEqual(['kept']);
    const lookups = () => redis.exists(`${prefix}sid:brief`);
    expect(await eventually(lookups, (count) => count === 0)).toBe(0);
    const result = await loginThrough(lasting, { sessionId: 'next' });
    expect(result).toMatchObject({ admitted: true, evicted: [] });
  });

  it('records who evicted a session, for an hour by default', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix, now: () => 1234 });
    await loginThrough(registry, { sessionId: 'a' });
    await loginThrough(registry, { sessionId: 'b', instanceId: 'worker-b' });
    await loginThrough(registry, { sessionId: 'c' });

    expect(await registry.evictionOf('a')).toEqual({
      at: 1234,
      byInstanceId: 'worker-b',
      bySessionId: 'b',
      reason: 'evicted',
    });
    expect(await registry.evictionOf('b')).toMatchObject({ byInstanceId: null, bySessionId: 'c' });
    expect(await registry.evictionOf('c')).toBeNull();
    expect(await redis.hgetall(`${prefix}{u:alice}:evicted:a`)).toEqual({
      at: '1234',
      byInstance: 'worker-b',
      bySession: 'b',
      reason: 'evicted',
    });
    for (const key of [`${prefix}{u:alice}:evicted:a`, `${prefix}sid:a`]) {
      expect(DEFAULT_EVICTION_RECORD_TTL_MS).toBe(3_600_000);
      expect(await redis.pttl(key)).toBeGreaterThan(DEFAULT_EVICTION_RECORD_TTL_MS - MINUTE_MS);
      expect(await redis.pttl(key)).toBeLessThanOrEqual(DEFAULT_EVICTION_RECORD_TTL_MS);
    }
  });

  it('forgets an eviction record and its id lookup after evictionRecordTtlMs', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix, evictionRecordTtlMs: 200 });
    await loginThrough(registry, { sessionId: 'a' });
    await loginThrough(registry, { sessionId: 'b' });
    const gone = await eventually(
      async () => [await registry.evictionOf('a'), await redis.exists(`${prefix}sid:a`)],
      ([record, lookups]) => record === null && lookups === 0,
    );
    expect(gone).toEqual([null, 0]);
  });

  it('writes no eviction record for a logout or a dry run', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { sessionId: 'a' });
    await loginThrough(registry, { sessionId: 'b', settings: { dryRun: true } });
    expect(await registry.remove('a')).toBe(true);
    expect(await registry.evictionOf('a')).toBeNull();
    expect(await registry.evictionOf('b')).toBeNull();
    expect((await keysUnder(prefix)).filter((key) => key.includes(':evicted:'))).toEqual([]);
    expect(await redis.exists(`${prefix}sid:a`)).toBe(0);
  });

  it('keeps no id lookup for a denied login', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    const settings = { onLimit: 'deny-new' as const };
    await loginThrough(registry, { settings, sessionId: 'a' });
    const result = await loginThrough(registry, { settings, sessionId: 'b' });
    expect(result.admitted).toBe(false);
    expect(await redis.exists(`${prefix}sid:b`)).toBe(0);
    expect(await registry.remove('b')).toBe(false);
  });

  it('keeps the id lookup of a live session whose re-admission is denied after a lost race', async () => {
    const prefix = freshPrefix();
    const [a, b] = [connect(), connect()];
    const first = createRedisSessionRegistry(a, { prefix, retryDelayMs: () => 0 });
    const second = createRedisSessionRegistry(b, { prefix });
    const gate = `${prefix}gate`;
    const roomy = { maxSessions: 3 };
    await loginThrough(first, { settings: roomy, sessionId: 'a' });
    await loginThrough(first, { settings: roomy, sessionId: 'b' });
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      if (rival) return;
      void a.blpop(gate, 5);
      rival = loginThrough(second, { settings: roomy, sessionId: 'c' }).finally(() =>
        b.lpush(gate, 'go'),
      );
    });

    const settings = { maxSessions: 2, onLimit: 'deny-new' as const };
    const again = await loginThrough(racing, { settings, sessionId: 'a' });
    expect(await rival).toMatchObject({ admitted: true });
    expect(again.admitted).toBe(false);
    expect(await first.remove('a')).toBe(true);
  });

  it('decides again when another process commits between its read and its commit', async () => {
    const prefix = freshPrefix();
    const [a, b] = [connect(), connect()];
    const first = createRedisSessionRegistry(a, { prefix, retryDelayMs: () => 0 });
    const second = createRedisSessionRegistry(b, { prefix });
    const gate = `${prefix}gate`;
    await loginThrough(first, { sessionId: 'old' });
    let decisions = 0;
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      decisions += 1;
      if (decisions > 1) return;
      // Blocks connection `a`, so this admission's commit waits until the rival has committed.
      void a.blpop(gate, 5);
      rival = loginThrough(second, { sessionId: 'rival' }).finally(() => b.lpush(gate, 'go'));
    });

    const result = await loginThrough(racing, { sessionId: 'outer' });
    expect(decisions).toBe(2);
    expect(await rival).toMatchObject({ admitted: true, evicted: [{ id: 'old' }] });
    expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'rival' }] });
    expect(ids(await first.list('alice'))).toEqual(['outer']);
    expect(await first.evictionOf('rival')).toMatchObject({ bySessionId: 'outer' });
  });

  it('drops the id lookup of a login denied after a lost race', async () => {
    const prefix = freshPrefix();
    const [a, b] = [connect(), connect()];
    const first = createRedisSessionRegistry(a, { prefix, retryDelayMs: () => 0 });
    const second = createRedisSessionRegistry(b, { prefix });
    const gate = `${prefix}gate`;
    const settings = { onLimit: 'deny-new' as const };
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      if (rival) return;
      void a.blpop(gate, 5);
      rival = loginThrough(second, { settings, sessionId: 'rival' }).finally(() =>
        b.lpush(gate, 'go'),
      );
    });

    const result = await loginThrough(racing, { settings, sessionId: 'late' });
    expect(await rival).toMatchObject({ admitted: true });
    expect(result.admitted).toBe(false);
    expect(ids(await first.list('alice'))).toEqual(['rival']);
    expect(await redis.exists(`${prefix}sid:late`)).toBe(0);
  });

  it('gives up with AdmissionConflictError after maxAttempts lost races', async () => {
    const prefix = freshPrefix();
    const [a, b] = [connect(), connect()];
    const first = createRedisSessionRegistry(a, { prefix, maxAttempts: 3, retryDelayMs: () => 0 });
    const second = createRedisSessionRegistry(b, { prefix });
    const gate = `${prefix}gate`;
    const rivals: Promise<unknown>[] = [];
    const alwaysRacing = beforeDecide(first, () => {
      void a.blpop(gate, 5);
      rivals.push(loginThrough(second).finally(() => b.lpush(gate, 'go')));
    });

    const error = await loginThrough(alwaysRacing, { sessionId: 'loser' }).catch((e) => e);
    await Promise.all(rivals);
    expect(error).toBeInstanceOf(AdmissionConflictError);
    expect(error.name).toBe('AdmissionConflictError');
    expect(error.message).toMatch(/user "alice" gave up after 3 attempts/);
    expect(rivals).toHaveLength(3);
    expect(ids(await first.list('alice'))).not.toContain('loser');
    expect(await redis.exists(`${prefix}sid:loser`)).toBe(0);
  });

  it('keeps all keys of one user in one Cluster slot and the id lookups apart', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { sessionId: 'a' });
    await loginThrough(registry, { sessionId: 'b' });
    const user = `${prefix}{u:alice}:`;
    const keys = await keysUnder(prefix);
    expect(keys).toEqual(
      [
        `${prefix}sid:a`,
        `${prefix}sid:b`,
        `${user}evicted:a`,
        `${user}s:b`,
        `${user}sessions`,
        `${user}version`,
      ].sort(),
    );
    const userKeys = keys.filter((key) => key.startsWith(user));
    expect(new Set(userKeys.map(keySlot))).toEqual(new Set([keySlot('u:alice')]));
  });

  it('works on a client with an ioredis keyPrefix', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(connect({ keyPrefix: prefix }), { prefix: 'app:' });
    await loginThrough(registry, { sessionId: 'a' });
    const result = await loginThrough(registry, { sessionId: 'b' });
    expect(result).toMatchObject({ evicted: [{ id: 'a' }] });
    expect(ids(await registry.list('alice'))).toEqual(['b']);
    expect(await registry.evictionOf('a')).toMatchObject({ bySessionId: 'b' });
    expect(await registry.remove('b')).toBe(true);
    expect(await keysUnder(prefix)).toEqual([
      `${prefix}app:sid:a`,
      `${prefix}app:{u:alice}:evicted:a`,
      `${prefix}app:{u:alice}:version`,
    ]);
  });

  it('refuses a prefix that would change the hash tag, and attempts it cannot make', () => {
    expect(() => createRedisSessionRegistry(redis, { prefix: 'app{1}:' })).toThrow(/prefix/);
    expect(() => createRedisSessionRegistry(redis, { prefix: 'app}:' })).toThrow(/prefix/);
    for (const maxAttempts of [0, 1.5]) {
      expect(() => createRedisSessionRegistry(redis, { maxAttempts })).toThrow(/maxAttempts/);
    }
    expect(() => createRedisSessionRegistry(redis, { maxAttempts: 1 })).not.toThrow();
  });
});

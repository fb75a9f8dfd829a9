import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type RedisHandle, useRedis } from '@storm-lab/harness';
import fc from 'fast-check';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loginAdmission, resolveRule } from './decide.ts';
import { createMemorySessionRegistry } from './memory-registry.ts';
import {
  AdmissionConflictError,
  createRedisSessionRegistry,
  DEFAULT_EVICTION_RECORD_TTL_MS,
  DEFAULT_SESSION_TTL_MS,
  DecisionMismatchError,
  type RedisSessionRegistry,
} from './redis-registry.ts';
import type { AdmitRequest, AdmitResult, SessionDetails, SessionRegistry } from './registry.ts';
import { parseSettings } from './settings.ts';
import {
  createTestUser,
  loginThrough,
  runResolvingRegistryConformance,
  runSessionRegistryConformance,
} from './testing/index.ts';

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

/**
 * Two registries of one prefix on their own connections, as two processes. `meanwhile(step)`
 * holds `first`'s connection (its next command waits) until `step`, run through the second
 * registry, has settled: called from `decide`, it lands between that admission's read and its
 * commit.
 */
function twoProcesses(options: { maxAttempts?: number } = {}) {
  const prefix = freshPrefix();
  const [a, b] = [connect(), connect()];
  // Read, decide, commit: the way with a window between the read and the commit.
  const optimistic = { prefix, decideInRedis: false };
  const first = createRedisSessionRegistry(a, { ...optimistic, retryDelayMs: () => 0, ...options });
  const second = createRedisSessionRegistry(b, optimistic);
  const gate = `${prefix}gate`;
  function meanwhile<T>(step: (registry: RedisSessionRegistry) => Promise<T>): Promise<T> {
    void a.blpop(gate, 5);
    return step(second).finally(() => b.lpush(gate, 'go'));
  }
  return { prefix, first, meanwhile };
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

// Both ways to admit: one script deciding on the request's limit (the default), and reading,
// deciding in JavaScript and committing with a version check.
for (const decideInRedis of [true, false]) {
  const name = `Redis registry (${decideInRedis ? 'decided in one script' : 'decided in JavaScript'})`;
  runSessionRegistryConformance({
    name,
    create: () => {
      const prefix = freshPrefix();
      const registry = createRedisSessionRegistry(redis, { prefix, decideInRedis });
      prefixOf.set(registry, prefix);
      return registry;
    },
    processes: {
      module: fileURLToPath(new URL('./testing/redis-process-registry.ts', import.meta.url)),
      config: (registry) => ({ url: server?.url, prefix: prefixOf.get(registry), decideInRedis }),
    },
    pools: true,
  });

  runResolvingRegistryConformance({
    name,
    create: () => createRedisSessionRegistry(redis, { prefix: freshPrefix(), decideInRedis }),
  });
}

afterEach(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
  connections = [];
});

describe('Redis session registry', () => {
  it('lists every live session oldest first, then by id, with instance, tracking, pool, use and attributes', async () => {
    const registry = createRedisSessionRegistry(redis, { prefix: freshPrefix() });
    const unlimited = { preventConcurrentLogins: false };
    const pooled = { rules: [{ match: { path: 'xqueue' } }] };
    const attributes = { userAgent: 'grader/2', address: '10.0.0.7' };
    await loginThrough(registry, { settings: unlimited, sessionId: 'b', at: 2000 });
    await loginThrough(registry, { sessionId: 'c', at: 2000, instanceId: 'worker-a' });
    await loginThrough(registry, { settings: unlimited, sessionId: 'a', at: 3000 });
    await loginThrough(registry, {
      settings: pooled,
      sessionId: 'd',
      at: 4000,
      path: '/xqueue/',
      attributes,
    });
    await registry.touch('c', 4500);
    const session = {
      userId: 'alice',
      instanceId: null,
      expiresAt: expect.any(Number),
      attributes: {},
    };
    const expected: SessionDetails[] = [
      { ...session, id: 'b', createdAt: 2000, lastSeenAt: 2000, tracked: false, pool: 'default' },
      {
        ...session,
        id: 'c',
        createdAt: 2000,
        lastSeenAt: 4500,
        instanceId: 'worker-a',
        tracked: true,
        pool: 'default',
      },
      { ...session, id: 'a', createdAt: 3000, lastSeenAt: 3000, tracked: false, pool: 'default' },
      {
        ...session,
        id: 'd',
        createdAt: 4000,
        lastSeenAt: 4000,
        tracked: true,
        pool: 'path:xqueue',
        attributes,
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
    // Nor had it attributes or a last use: none, and never used since its creation.
    const before = { pool: 'default', lastSeenAt: 1000, attributes: {} };
    expect(await registry.get('old')).toMatchObject(before);
    expect(await createRedisSessionRegistry(redis, { prefix }).get('old')).toMatchObject(before);
    expect(await registry.touch('old', 1500)).toBe(true);
    expect(await registry.get('old')).toMatchObject({ lastSeenAt: 1500 });
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
    // The id lookup stays for evictionOf, but the session is not live.
    expect(await redis.exists(`${prefix}sid:a`)).toBe(1);
    expect(await registry.get('a')).toBeNull();
    expect(await createRedisSessionRegistry(redis, { prefix }).get('a')).toBeNull();
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
    const { first, meanwhile } = twoProcesses();
    const roomy = { maxSessions: 3 };
    await loginThrough(first, { settings: roomy, sessionId: 'a' });
    await loginThrough(first, { settings: roomy, sessionId: 'b' });
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      if (rival) return;
      rival = meanwhile((second) => loginThrough(second, { settings: roomy, sessionId: 'c' }));
    });

    const settings = { maxSessions: 2, onLimit: 'deny-new' as const };
    const again = await loginThrough(racing, { settings, sessionId: 'a' });
    expect(await rival).toMatchObject({ admitted: true });
    expect(again.admitted).toBe(false);
    expect(await first.remove('a')).toBe(true);
  });

  it('decides again when another process commits between its read and its commit', async () => {
    const { first, meanwhile } = twoProcesses();
    await loginThrough(first, { sessionId: 'old' });
    let decisions = 0;
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      decisions += 1;
      if (decisions > 1) return;
      // This admission's commit waits until the rival has committed.
      rival = meanwhile((second) => loginThrough(second, { sessionId: 'rival' }));
    });

    const result = await loginThrough(racing, { sessionId: 'outer' });
    expect(decisions).toBe(2);
    expect(await rival).toMatchObject({ admitted: true, evicted: [{ id: 'old' }] });
    expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'rival' }] });
    expect(ids(await first.list('alice'))).toEqual(['outer']);
    expect(await first.evictionOf('rival')).toMatchObject({ bySessionId: 'outer' });
  });

  it("takes one registry's parallel logins of one user one at a time: each decides once", async () => {
    const registry = createRedisSessionRegistry(connect(), {
      prefix: freshPrefix(),
      decideInRedis: false,
    });
    let decisions = 0;
    const counting = beforeDecide(registry, () => {
      decisions += 1;
    });
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, index) => loginThrough(counting, { sessionId: `p${index}` })),
    );
    // Side by side, 31 of them would lose a race and read and decide again.
    expect(decisions).toBe(32);
    expect(results.flatMap((result) => (result.admitted ? result.evicted : []))).toHaveLength(31);
    expect(ids(await registry.list('alice'))).toEqual(['p31']);
  });

  it('hands the sessions a commit leaves to the admission queued behind it, which reads none', async () => {
    const prefix = freshPrefix();
    const monitor = await connect().monitor();
    const reads: string[][] = [];
    // LIVE_SESSIONS is the only script sent with two keys (index, version) and no argument.
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (
        args[0]?.toLowerCase() === 'evalsha' &&
        args.length === 5 &&
        args[3]?.startsWith(prefix)
      ) {
        reads.push(args);
      }
    });
    try {
      const registry = createRedisSessionRegistry(connect(), { prefix, decideInRedis: false });
      await loginThrough(registry, { sessionId: 'before' });
      await eventually(
        async () => reads.length,
        (count) => count === 1,
      );
      const results = await Promise.all(
        Array.from({ length: 32 }, (_, index) =>
          loginThrough(registry, { sessionId: `q${index}` }),
        ),
      );
      expect(results.flatMap((r) => (r.admitted ? r.evicted.map((s) => s.id) : []))).toEqual([
        'before',
        ...Array.from({ length: 31 }, (_, index) => `q${index}`),
      ]);
      expect(ids(await registry.list('alice'))).toEqual(['q31']);
      // The list above is a read too: one for the first of the 32, one for `list`.
      expect(
        await eventually(
          async () => reads.length,
          (count) => count >= 3,
        ),
      ).toBe(3);
    } finally {
      monitor.disconnect();
    }
  });

  it('reads afresh when another process committed after the commit that handed its sessions on', async () => {
    const { first, meanwhile } = twoProcesses();
    let decisions = 0;
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      decisions += 1;
      // The second login decides on what the first one's commit handed it: the rival commits
      // before that decision's commit reaches Redis.
      if (decisions !== 2) return;
      rival = meanwhile((second) => loginThrough(second, { sessionId: 'rival' }));
    });

    const [one, two] = await Promise.all([
      loginThrough(racing, { sessionId: 'one' }),
      loginThrough(racing, { sessionId: 'two' }),
    ]);
    expect(decisions).toBe(3);
    expect(one).toMatchObject({ admitted: true, evicted: [] });
    expect(await rival).toMatchObject({ admitted: true, evicted: [{ id: 'one' }] });
    expect(two).toMatchObject({ admitted: true, evicted: [{ id: 'rival' }] });
    expect(ids(await first.list('alice'))).toEqual(['two']);
  });

  it('drops the id lookup of a login denied after a lost race', async () => {
    const { prefix, first, meanwhile } = twoProcesses();
    const settings = { onLimit: 'deny-new' as const };
    let rival: Promise<AdmitResult> | undefined;
    const racing = beforeDecide(first, () => {
      if (rival) return;
      rival = meanwhile((second) => loginThrough(second, { settings, sessionId: 'rival' }));
    });

    const result = await loginThrough(racing, { settings, sessionId: 'late' });
    expect(await rival).toMatchObject({ admitted: true });
    expect(result.admitted).toBe(false);
    expect(ids(await first.list('alice'))).toEqual(['rival']);
    expect(await redis.exists(`${prefix}sid:late`)).toBe(0);
  });

  it('gives up with AdmissionConflictError after maxAttempts lost races', async () => {
    const { prefix, first, meanwhile } = twoProcesses({ maxAttempts: 3 });
    const rivals: Promise<unknown>[] = [];
    const alwaysRacing = beforeDecide(first, () => {
      rivals.push(meanwhile((second) => loginThrough(second)));
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
    await loginThrough(registry, { sessionId: 'a', attributes: { userAgent: 'curl/8' } });
    await loginThrough(registry, { sessionId: 'b', attributes: { userAgent: 'curl/8' } });
    await registry.touch('b', Date.now());
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
    for (const userCacheSize of [-1, 1.5]) {
      expect(() => createRedisSessionRegistry(redis, { userCacheSize })).toThrow(/userCacheSize/);
    }
  });
});

/** Records the name of every command `connection` sends from now on. */
function commandsSentBy(connection: Redis): string[] {
  const sent: string[] = [];
  const send = connection.sendCommand.bind(connection);
  connection.sendCommand = (command, stream) => {
    sent.push(command.name);
    return send(command, stream);
  };
  return sent;
}

describe('Redis session registry: resolving sessions', () => {
  it('stores attributes in the session hash under "a:", apart from its own fields', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    const attributes = { pool: 'mine', userAgent: 'curl/8' };
    await loginThrough(registry, { sessionId: 'a', at: 1000, attributes });
    const hash = `${prefix}{u:alice}:s:a`;
    expect(await redis.hgetall(hash)).toEqual({
      createdAt: '1000',
      tracked: '1',
      pool: 'default',
      'a:pool': 'mine',
      'a:userAgent': 'curl/8',
    });
    expect(await registry.touch('a', 2000)).toBe(true);
    expect(await redis.hget(hash, 'lastSeenAt')).toBe('2000');
    expect(await registry.get('a')).toMatchObject({
      pool: 'default',
      lastSeenAt: 2000,
      attributes,
    });
    // Admitting the same id again is a new login: it starts without the old attributes or use.
    await loginThrough(registry, { sessionId: 'a', at: 3000 });
    expect(await registry.get('a')).toMatchObject({ lastSeenAt: 3000, attributes: {} });
  });

  it("gives a session's expiry from its TTL, and nothing once it expired", async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, {
      prefix,
      sessionTtlMs: 300,
      now: () => 5000,
    });
    await loginThrough(registry, { sessionId: 'brief' });
    const expiresAt = (await registry.get('brief'))?.expiresAt;
    expect(expiresAt).toBeGreaterThan(5000);
    expect(expiresAt).toBeLessThanOrEqual(5300);
    const gone = await eventually(
      () => registry.get('brief'),
      (session) => session === null,
    );
    expect(gone).toBeNull();
    expect(await registry.touch('brief', 6000)).toBe(false);
  });

  it('records use without bumping the version or extending the TTL', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix, sessionTtlMs: MINUTE_MS });
    await loginThrough(registry, { sessionId: 'a' });
    const [hash, version] = [`${prefix}{u:alice}:s:a`, `${prefix}{u:alice}:version`];
    // As if half of its life had passed: a touch that renewed the TTL would raise it again.
    await redis.pexpire(hash, MINUTE_MS / 2);
    const before = await redis.get(version);
    expect(await registry.touch('a', Date.now())).toBe(true);
    expect(await redis.get(version)).toBe(before);
    expect(await redis.pttl(hash)).toBeLessThanOrEqual(MINUTE_MS / 2);
  });

  it('does not make a concurrent admission decide again when a session is used', async () => {
    const { first, meanwhile } = twoProcesses();
    const settings = { maxSessions: 2, onLimit: 'evict-least-recent' as const };
    await loginThrough(first, { settings, sessionId: 'used' });
    let decisions = 0;
    let touching: Promise<boolean> | undefined;
    const racing = beforeDecide(first, () => {
      decisions += 1;
      if (touching) return;
      // Holds this admission's commit back until the touch is done.
      touching = meanwhile((second) => second.touch('used', Date.now()));
    });

    const result = await loginThrough(racing, { settings, sessionId: 'new' });
    expect(await touching).toBe(true);
    expect(decisions).toBe(1);
    expect(result).toMatchObject({ admitted: true, evicted: [] });
  });

  it('makes a concurrent admission decide again when removeAllOf ends a tracked session', async () => {
    const { first, meanwhile } = twoProcesses();
    await loginThrough(first, { sessionId: 'old' });
    let decisions = 0;
    let ending: Promise<string[]> | undefined;
    const racing = beforeDecide(first, () => {
      decisions += 1;
      if (ending) return;
      ending = meanwhile((second) => second.removeAllOf('alice'));
    });

    const result = await loginThrough(racing, { sessionId: 'outer' });
    expect(await ending).toEqual(['old']);
    expect(decisions).toBe(2);
    expect(result).toMatchObject({ admitted: true, evicted: [] });
    expect(await first.evictionOf('old')).toBeNull();
    expect(ids(await first.list('alice'))).toEqual(['outer']);
  });

  it("bumps the version only when removeAllOf ends a tracked session, and drops the ended ids' lookups", async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    const version = async () => Number(await redis.get(`${prefix}{u:alice}:version`));
    await loginThrough(registry, { settings: { exemptUsernames: ['alice'] }, sessionId: 'x' });
    const untracked = await version();
    expect(await registry.removeAllOf('alice')).toEqual(['x']);
    expect(await version()).toBe(untracked);
    expect(await redis.exists(`${prefix}sid:x`)).toBe(0);

    const settings = { maxSessions: 2 };
    await loginThrough(registry, { settings, sessionId: 'a' });
    await loginThrough(registry, { settings, sessionId: 'b' });
    const tracked = await version();
    expect(await registry.removeAllOf('alice', { except: 'b' })).toEqual(['a']);
    expect(await version()).toBe(tracked + 1);
    expect(await redis.exists(`${prefix}sid:a`)).toBe(0);
    expect(await redis.exists(`${prefix}sid:b`)).toBe(1);
    expect(await registry.evictionOf('a')).toBeNull();
  });

  it('resolves a session in one command once it knows its user, in two before', async () => {
    const prefix = freshPrefix();
    const connection = connect();
    const sent = commandsSentBy(connection);
    const registry = createRedisSessionRegistry(connection, { prefix, userCacheSize: 1 });
    const unlimited = { preventConcurrentLogins: false };
    await loginThrough(registry, { settings: unlimited, sessionId: 'a' });
    // Loads the scripts, should this server not have them yet.
    await registry.get('a');
    await registry.touch('a', Date.now());
    const sentBy = async (step: () => Promise<unknown>) => {
      sent.length = 0;
      await step();
      return [...sent];
    };

    expect(await sentBy(() => registry.get('a'))).toEqual(['evalsha']);
    expect(await sentBy(() => registry.touch('a', Date.now()))).toEqual(['evalsha']);
    // A cache of one: admitting b pushes a out, so a's user is read from its lookup again.
    await loginThrough(registry, { settings: unlimited, sessionId: 'b' });
    expect(await sentBy(() => registry.get('b'))).toEqual(['evalsha']);
    expect(await sentBy(() => registry.get('a'))).toEqual(['get', 'evalsha']);
    expect(await sentBy(() => registry.get('a'))).toEqual(['evalsha']);
    expect(await sentBy(() => registry.get('unknown'))).toEqual(['get']);
  });

  it('asks the id lookup again when the user it remembers no longer has the session', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    const other = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { sessionId: 'reused' });
    expect(await other.remove('reused')).toBe(true);
    const bob = { username: 'bob', groups: [] };
    await loginThrough(other, { user: bob, sessionId: 'reused', at: 8000 });
    expect(await registry.get('reused')).toMatchObject({ userId: 'bob' });
    expect(await registry.touch('reused', 9000)).toBe(true);
    expect(await other.get('reused')).toMatchObject({ userId: 'bob', lastSeenAt: 9000 });
  });

  it('refuses a touch without a time', async () => {
    const registry = createRedisSessionRegistry(redis, { prefix: freshPrefix() });
    await loginThrough(registry, { sessionId: 'a' });
    await expect(registry.touch('a', Number.NaN)).rejects.toThrow(/touch needs a time/);
  });
});

describe('Redis session registry: deciding in one script', () => {
  it('admits 32 parallel logins of one user with one script each: no read, no retry, one left', async () => {
    const prefix = freshPrefix();
    const monitor = await connect().monitor();
    const scripts: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'evalsha' && args[3]?.startsWith(prefix)) scripts.push(args);
    });
    try {
      const registry = createRedisSessionRegistry(connect(), { prefix });
      const results = await Promise.all(
        Array.from({ length: 32 }, (_, index) =>
          loginThrough(registry, { sessionId: `p${String(index).padStart(2, '0')}` }),
        ),
      );
      const live = await registry.list('alice');
      expect(ids(live)).toHaveLength(1);
      expect(results.flatMap((r) => (r.admitted ? r.evicted : []))).toHaveLength(31);
      // 32 admissions (three keys each: index, version, the new hash) and the `list` read (two).
      const seen = await eventually(
        async () => scripts.length,
        (count) => count === 33,
      );
      expect(seen).toBe(33);
      expect(scripts.filter((args) => args[2] === '3')).toHaveLength(32);
    } finally {
      monitor.disconnect();
    }
  });

  it('refuses a request whose decide disagrees with its limit, naming both', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { sessionId: 'old' });
    const admit = (id: string, decide: AdmitRequest['decide'], userId = 'alice') =>
      registry
        .admit({
          userId,
          session: { id, instanceId: null, createdAt: Date.now() },
          limit: loginAdmission(parseSettings({}), createTestUser(), {
            sessionId: id,
            now: Date.now(),
          }).limit,
          decide,
        })
        .then(
          () => new Error('admitted'),
          (e: unknown) => e as Error,
        );
    const evicting = await admit('new', () => ({ outcome: 'unrestricted' }));
    expect(evicting).toBeInstanceOf(DecisionMismatchError);
    expect(evicting.message).toContain('ADMIT evicting [old]');
    expect(evicting.message).toContain('unrestricted evicting []');
    // The script's decision stands: its session resolves from a registry that never saw it.
    expect(await createRedisSessionRegistry(redis, { prefix }).get('new')).not.toBeNull();
    // Same evictions (none: a user without sessions), another outcome: refused all the same.
    const rule = resolveRule(parseSettings({}), createTestUser());
    const denying = await admit(
      'first',
      () => ({ outcome: 'deny', rule, liveSessions: 0 }),
      'carol',
    );
    expect(denying).toBeInstanceOf(DecisionMismatchError);
    expect(denying.message).toContain('deny evicting []');
  });

  it('refuses a decide that counts other competing sessions than the script did', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { settings: { maxSessions: 3 }, sessionId: 'a' });
    const limit = loginAdmission(parseSettings({ maxSessions: 3 }), createTestUser(), {
      sessionId: 'b',
      now: Date.now(),
    }).limit;
    if (limit.outcome !== 'limit') throw new Error('expected a limit');
    const miscounted = await registry
      .admit({
        userId: 'alice',
        session: { id: 'b', instanceId: null, createdAt: Date.now() },
        limit,
        decide: () => ({
          outcome: 'allow',
          rule: limit.rule,
          evict: [],
          dryRun: false,
          liveSessions: 0,
        }),
      })
      .then(
        () => new Error('admitted'),
        (e: unknown) => e as Error,
      );
    expect(miscounted).toBeInstanceOf(DecisionMismatchError);
    expect(miscounted.message).toContain('ADMIT evicting [] (1 competing)');
    expect(miscounted.message).toContain('allow evicting [] (0 competing)');
  });

  it('keeps the id lookup of a live session whose re-admission the script denies', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    await loginThrough(registry, { settings: { maxSessions: 3 }, sessionId: 'a' });
    await loginThrough(registry, { settings: { maxSessions: 3 }, sessionId: 'b' });
    const settings = { onLimit: 'deny-new' as const };
    expect((await loginThrough(registry, { settings, sessionId: 'a' })).admitted).toBe(false);
    expect(await redis.exists(`${prefix}sid:a`)).toBe(1);
    expect((await loginThrough(registry, { settings, sessionId: 'c' })).admitted).toBe(false);
    expect(await redis.exists(`${prefix}sid:c`)).toBe(0);
  });

  it('drops the id lookup when the admission script fails', async () => {
    const prefix = freshPrefix();
    const registry = createRedisSessionRegistry(redis, { prefix });
    // The user's index is not a sorted set: ZRANGE in the script fails with WRONGTYPE.
    await redis.set(`${prefix}{u:alice}:sessions`, 'not a sorted set');
    await expect(loginThrough(registry, { sessionId: 'a' })).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.exists(`${prefix}sid:a`)).toBe(0);
  });

  // session-policy's applyLimit, against the script that applies it inside Redis: every login of
  // a random sequence (pools, instances, creation ties, uses, ids that sort differently by byte
  // and by locale) ends as in the memory registry, which decides in JavaScript.
  it('decides as applyLimit does for any sessions and rule', async () => {
    const login = fc.record({
      id: fc.constantFrom('a', 'B', 'a-b', 'ab', '_x', 'Z9', 'é', 'b'),
      at: fc.integer({ min: 1, max: 4 }),
      instanceId: fc.constantFrom(null, 'w1', 'w2'),
      path: fc.constantFrom(undefined, '/xqueue/login/', '/login'),
      touch: fc.option(fc.integer({ min: 5, max: 8 }), { nil: undefined }),
    });
    const settings = fc.record({
      maxSessions: fc.integer({ min: 1, max: 3 }),
      onLimit: fc.constantFrom('evict-oldest', 'evict-least-recent', 'deny-new'),
      scope: fc.constantFrom('account', 'instance'),
      dryRun: fc.boolean(),
      xqueueMax: fc.integer({ min: 1, max: 2 }),
    });
    await fc.assert(
      fc.asyncProperty(settings, fc.array(login, { maxLength: 8 }), async (chosen, logins) => {
        const policy = {
          maxSessions: chosen.maxSessions,
          onLimit: chosen.onLimit,
          scope: chosen.scope,
          dryRun: chosen.dryRun,
          rules: [{ match: { path: 'xqueue' }, maxSessions: chosen.xqueueMax }],
        };
        const inRedis = createRedisSessionRegistry(redis, { prefix: freshPrefix() });
        const inMemory = createMemorySessionRegistry();
        for (const step of logins) {
          const { id, touch: _touch, ...rest } = step;
          const options = { settings: policy, sessionId: id, ...rest };
          const [fromRedis, fromMemory] = [
            await loginThrough(inRedis, options),
            await loginThrough(inMemory, options),
          ];
          expect(summary(fromRedis)).toEqual(summary(fromMemory));
          if (step.touch !== undefined) {
            expect(await inRedis.touch(step.id, step.touch)).toBe(
              await inMemory.touch(step.id, step.touch),
            );
          }
        }
        expect(ids(await inRedis.list('alice'))).toEqual(ids(await inMemory.list('alice')));
      }),
      { numRuns: 60 },
    );
  });
});

function summary(result: AdmitResult) {
  return result.admitted
    ? { outcome: result.decision.outcome, evicted: ids(result.evicted), tracked: result.tracked }
    : { outcome: 'deny', live: result.decision.liveSessions };
}

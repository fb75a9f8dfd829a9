import { randomBytes } from 'node:crypto';
import { loginAdmission, type PolicySettingsInput, parseSettings } from '@storm-lab/session-policy';
import { createRedisSessionRegistry, DecisionMismatchError } from '@storm-lab/session-policy/redis';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { useTestRedis } from '../testing/redis.ts';
import { ensureGroup, upsertUser } from '../users.ts';
import { sessionAuthHash } from './auth-hash.ts';
import { createRedisSessionStore } from './redis-store.ts';
import { TOMBSTONE_TTL_MS } from './store.ts';

// SESSION_STORE=redis: the LMS's sessions in Redis, its users and tombstones in SQLite.

const server = useTestRedis();
const clients: Redis[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
});

/** A Redis client with keys of its own: the tests may share a Redis given by REDIS_URL. */
function freshRedis(): { redis: Redis; prefix: string } {
  const redis = new Redis(server.url());
  clients.push(redis);
  return { redis, prefix: `lms-test-${randomBytes(6).toString('hex')}:` };
}

describe('Redis session store', () => {
  let database: LmsDatabase;
  afterEach(() => database.close());

  function setup(policy: PolicySettingsInput = {}) {
    database = openDatabase({ path: ':memory:' });
    const clock = createTestClock();
    ensureGroup(database.db, 'graders');
    const userId = upsertUser(database.db, {
      username: 'alice',
      passwordHash: 'x',
      groups: ['graders'],
      now: clock.now(),
    });
    const keys = freshRedis();
    const store = createRedisSessionStore({
      db: database.db,
      ...keys,
      ttlMs: 10 * TOMBSTONE_TTL_MS,
      now: clock.now,
    });
    const settings = parseSettings(policy);
    const user = { username: 'alice', groups: ['graders'] };
    const login = (
      id: string,
      extra: { instanceId?: string; replacing?: string; password?: string } = {},
    ) =>
      store.admit({
        userId,
        session: { id, instanceId: extra.instanceId ?? null, createdAt: clock.now() },
        // As login.ts gives it: the decision as a function and as data, which Redis applies.
        ...loginAdmission(settings, user, {
          sessionId: id,
          instanceId: extra.instanceId ?? null,
          now: clock.now(),
          replacing: extra.replacing,
        }),
        lastLoginAt: clock.now(),
        authHash: sessionAuthHash(extra.password ?? 'x'),
        client: { userAgent: 'grader/1.0', address: '10.0.0.7' },
        ...(extra.replacing && { replacing: extra.replacing }),
      });
    return { store, clock, userId, login, keys };
  }

  it("hands the login's limit to the registry, which decides in Redis and checks decide agrees", async () => {
    const { store, clock, userId, login } = setup();
    await login('one');
    const { limit } = loginAdmission(
      parseSettings({}),
      { username: 'alice', groups: [] },
      {
        sessionId: 'two',
        now: clock.now(),
      },
    );
    const admitted = store.admit({
      userId,
      session: { id: 'two', instanceId: null, createdAt: clock.now() },
      authHash: sessionAuthHash('x'),
      limit,
      decide: () => ({ outcome: 'unrestricted' }),
    });
    await expect(admitted).rejects.toThrow(DecisionMismatchError);
  });

  it('resolves a live session with its user and groups from SQLite', async () => {
    const { store, userId, login } = setup();
    await login('one', { instanceId: 'pod-a' });
    expect(await store.lookup('one')).toEqual({
      kind: 'live',
      sessionId: 'one',
      userId,
      instanceId: 'pod-a',
      user: { id: userId, username: 'alice', isStaff: false, isActive: true, groups: ['graders'] },
    });
    expect(await store.lookup('never')).toEqual({ kind: 'none' });
  });

  it('tells the evicted session which login evicted it and the quota, from the tombstone', async () => {
    const { store, clock, login } = setup();
    await login('one');
    clock.advance(1000);
    await login('two0000000', { instanceId: 'pod-b' });
    expect(await store.lookup('one')).toEqual({
      kind: 'ended',
      end: {
        reason: 'evicted',
        at: clock.now(),
        eviction: {
          byInstance: 'pod-b',
          bySession: 'two00000',
          quota: { used: 1, max: 1, scope: 'account', pool: 'default' },
        },
      },
    });
    // Without the tombstone (a crash between the Redis step and the SQLite write), Redis's own
    // eviction record still says who evicted it.
    database.sqlite.prepare('DELETE FROM session_ends').run();
    expect(await store.lookup('one')).toEqual({
      kind: 'ended',
      end: {
        reason: 'evicted',
        at: clock.now(),
        eviction: { byInstance: 'pod-b', bySession: 'two00000', quota: null },
      },
    });
  });

  it('ends the session a client logs in from, once the new one is admitted', async () => {
    const { store, userId, login } = setup({ exemptUsernames: ['alice'] });
    await login('old');
    await login('new', { replacing: 'old' });
    expect((await store.list(userId)).map((session) => session.id)).toEqual(['new']);
  });

  it('lists, finds by short id and ends sessions as users and staff do', async () => {
    const { store, clock, userId, login } = setup({ exemptUsernames: ['alice'] });
    await login('aaaaaaaa-phone');
    clock.advance(1000);
    await login('bbbbbbbb-laptop');
    await login('bbbbbbbb-tablet');
    const details = await store.details(userId);
    expect(details.map((session) => session.id)).toEqual([
      'aaaaaaaa-phone',
      'bbbbbbbb-laptop',
      'bbbbbbbb-tablet',
    ]);
    expect(details[0]).toMatchObject({
      userAgent: 'grader/1.0',
      address: '10.0.0.7',
      tracked: false,
      pool: 'default',
    });
    expect(await store.findShort(userId, 'aaaaaaaa')).toEqual({
      kind: 'found',
      sessionId: 'aaaaaaaa-phone',
    });
    expect(await store.findShort(userId, 'bbbbbbbb')).toEqual({ kind: 'ambiguous' });
    expect(await store.findShort(userId, 'cccccccc')).toEqual({ kind: 'none' });
    expect(await store.findShort(userId, 'aaaa')).toEqual({ kind: 'none' });
    expect(await store.endOne('someone-else', 'aaaaaaaa-phone', 'staff')).toBe(false);
    expect(await store.endOne(userId, 'aaaaaaaa-phone', 'staff', { endedBy: 'staff' })).toBe(true);
    expect(await store.lookup('aaaaaaaa-phone')).toMatchObject({
      kind: 'ended',
      end: { reason: 'staff' },
    });
    expect(await store.liveCounts()).toEqual(new Map([[userId, 2]]));
    expect(
      await store.endAll(userId, 'user', { except: 'bbbbbbbb-tablet', endedBy: 'alice' }),
    ).toBe(1);
    expect(await store.lookup('bbbbbbbb-laptop')).toMatchObject({
      kind: 'ended',
      end: { reason: 'user' },
    });
    expect(await store.endAll(userId, 'password-change')).toBe(1);
    expect(await store.liveCounts()).toEqual(new Map());
  });

  it('refuses a session that recorded no auth hash, as Django flushes one without it', async () => {
    const { store, clock, userId, keys } = setup();
    // Stored as the LMS did before it recorded auth hashes: through the registry alone.
    const registry = createRedisSessionRegistry(keys.redis, {
      prefix: keys.prefix,
      sessionTtlMs: 60_000,
      evictionRecordTtlMs: 60_000,
      now: clock.now,
    });
    await registry.admit({
      userId,
      session: { id: 'legacy', instanceId: null, createdAt: clock.now() },
      decide: () => ({ outcome: 'unrestricted' }),
    });
    expect(await store.lookup('legacy')).toMatchObject({
      kind: 'ended',
      end: { reason: 'password-change' },
    });
  });

  it('prunes day-old tombstones', async () => {
    const { store, clock, login } = setup();
    await login('one');
    await login('two');
    clock.advance(TOMBSTONE_TTL_MS + 1);
    store.prune();
    expect(database.sqlite.prepare('SELECT count(*) AS n FROM session_ends').get()).toEqual({
      n: 0,
    });
  });
});

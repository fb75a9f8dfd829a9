import { randomBytes } from 'node:crypto';
import { type RedisHandle, useRedis } from '@storm-lab/harness';
import { loginAdmission, type PolicySettingsInput, parseSettings } from '@storm-lab/session-policy';
import { createRedisSessionRegistry, DecisionMismatchError } from '@storm-lab/session-policy/redis';
import {
  CONFORMANCE_USERNAMES,
  runSessionRegistryConformance,
} from '@storm-lab/session-policy/testing';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { ensureGroup, profileMeta, upsertUser } from '../users.ts';
import { sessionAuthHash } from './auth-hash.ts';
import { createRedisSessionStore } from './redis-store.ts';
import { type SessionStore, TOMBSTONE_TTL_MS } from './store.ts';

// SESSION_STORE=redis: the LMS's sessions in Redis, its users and tombstones in SQLite.

let server: RedisHandle;
const clients: Redis[] = [];
const databases = new Map<SessionStore, LmsDatabase>();

beforeAll(async () => {
  server = await useRedis(process.env.REDIS_URL);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await server?.stop();
});

/** A Redis client with keys of its own: the tests may share a Redis given by REDIS_URL. */
function freshRedis(): { redis: Redis; prefix: string } {
  const redis = new Redis(server.url);
  clients.push(redis);
  return { redis, prefix: `lms-test-${randomBytes(6).toString('hex')}:` };
}

const CONFORMANCE_NOW = 1_700_000_000_000;

runSessionRegistryConformance({
  name: 'Redis session store (LMS)',
  pools: true,
  create: () => {
    const database = openDatabase({ path: ':memory:' });
    for (const username of CONFORMANCE_USERNAMES) {
      upsertUser(database.db, { id: username, username, passwordHash: 'x', now: CONFORMANCE_NOW });
    }
    const store = createRedisSessionStore({
      db: database.db,
      ...freshRedis(),
      ttlMs: 60_000_000,
      now: () => CONFORMANCE_NOW,
    });
    databases.set(store, database);
    return store;
  },
  destroy: (store) => {
    databases.get(store as SessionStore)?.close();
    databases.delete(store as SessionStore);
  },
});

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

  it('writes the profile slot and last_login in SQLite, as upstream keeps them in its database', async () => {
    const { clock, userId, login } = setup();
    await login('one');
    clock.advance(1000);
    await login('two');
    expect(profileMeta(database.db, userId)).toEqual({ session_id: 'two' });
    const row = database.sqlite
      .prepare('SELECT last_login AS at FROM users WHERE id = ?')
      .get(userId);
    expect(row).toEqual({ at: clock.now() });
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

  it('logs out, naming the user who did', async () => {
    const { store, login } = setup();
    await login('one');
    expect(await store.end('one', 'logged-out')).toBe(true);
    expect(await store.end('one', 'logged-out')).toBe(false);
    expect(await store.lookup('one')).toMatchObject({
      kind: 'ended',
      end: { reason: 'logged-out' },
    });
    const row = database.sqlite.prepare('SELECT ended_by AS endedBy FROM session_ends').get();
    expect(row).toEqual({ endedBy: 'alice' });
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

  it('evicts the session used least recently: a lookup records its use in Redis', async () => {
    const { store, clock, login } = setup({ maxSessions: 2, onLimit: 'evict-least-recent' });
    await login('first');
    clock.advance(1000);
    await login('second');
    clock.advance(5 * 60_000);
    expect(await store.lookup('first')).toMatchObject({ kind: 'live' });
    expect(await login('third')).toMatchObject({ admitted: true, evicted: [{ id: 'second' }] });
  });

  it('refuses a session issued before its password hash changed, ends it and says why', async () => {
    const { store, clock, userId, login } = setup();
    await login('one');
    expect(await store.lookup('one')).toMatchObject({ kind: 'live' });
    clock.advance(1000);
    // The password changed in SQLite by a process that never reached this Redis.
    database.sqlite.prepare('UPDATE users SET password = ? WHERE id = ?').run('y', userId);
    const refused = { kind: 'ended', end: { reason: 'password-change', at: clock.now() } };
    expect(await store.lookup('one')).toEqual({ ...refused, endedNow: { username: 'alice' } });
    expect(await store.list(userId)).toEqual([]);
    const tombstone = database.sqlite
      .prepare('SELECT reason, ended_by AS endedBy FROM session_ends WHERE session_id = ?')
      .get('one');
    expect(tombstone).toEqual({ reason: 'password-change', endedBy: null });
    clock.advance(1000);
    expect(await store.lookup('one')).toEqual({
      kind: 'ended',
      end: { reason: 'password-change', at: clock.now() - 1000 },
    });
  });

  it('ends the sessions of an older password that alone deny a login under deny-new', async () => {
    const { store, userId, login } = setup({ maxSessions: 2, onLimit: 'deny-new' });
    await login('one');
    await login('two');
    expect(await login('three')).toMatchObject({ admitted: false });
    // The password changed where this Redis was not reached: 'one' and 'two' are stale.
    database.sqlite.prepare('UPDATE users SET password = ? WHERE id = ?').run('y', userId);
    expect(await login('four', { password: 'y' })).toMatchObject({ admitted: true });
    expect((await store.list(userId)).map((session) => session.id)).toEqual(['four']);
    expect(await store.lookup('one')).toMatchObject({
      kind: 'ended',
      end: { reason: 'password-change' },
    });
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

import { randomBytes } from 'node:crypto';
import { loginAdmission, type PolicySettingsInput, parseSettings } from '@storm-lab/session-policy';
import {
  CONFORMANCE_USERNAMES,
  runSessionRegistryConformance,
} from '@storm-lab/session-policy/testing';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { type TestSessionStore, useTestRedis } from '../testing/redis.ts';
import { profileMeta, upsertUser } from '../users.ts';
import { sessionAuthHash } from './auth-hash.ts';
import { createSessionStore, type SessionBackend } from './factory.ts';
import { type SessionStore, TOMBSTONE_TTL_MS } from './store.ts';

// What every SessionStore does alike, on both backends; what only one of them does is in
// sqlite-store.test.ts and redis-store.test.ts.

const redis = useTestRedis();
const clients: Redis[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
});

/** The backend under test; a Redis one with keys of its own (tests may share REDIS_URL). */
function backendOf(kind: TestSessionStore): SessionBackend {
  if (kind === 'sqlite') return { kind };
  const client = new Redis(redis.url());
  clients.push(client);
  return { kind, client, prefix: `lms-test-${randomBytes(6).toString('hex')}:` };
}

const CONFORMANCE_NOW = 1_700_000_000_000;
const databases = new Map<SessionStore, LmsDatabase>();

for (const [kind, name] of [
  ['sqlite', 'SQLite session store'],
  ['redis', 'Redis session store (LMS)'],
] as const) {
  runSessionRegistryConformance({
    name,
    pools: true,
    create: () => {
      const database = openDatabase({ path: ':memory:' });
      for (const username of CONFORMANCE_USERNAMES) {
        upsertUser(database.db, {
          id: username,
          username,
          passwordHash: 'x',
          now: CONFORMANCE_NOW,
        });
      }
      // The suite's fixture clock starts at CONFORMANCE_NOW, so no session is expired.
      const store = createSessionStore(backendOf(kind), {
        db: database.db,
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
}

describe.each(['sqlite', 'redis'] as const)('session store, sessions in %s', (kind) => {
  let database: LmsDatabase;
  afterEach(() => database.close());

  function setup(policy: PolicySettingsInput = {}) {
    database = openDatabase({ path: ':memory:' });
    const clock = createTestClock();
    const userId = upsertUser(database.db, {
      username: 'alice',
      passwordHash: 'x',
      now: clock.now(),
    });
    const store = createSessionStore(backendOf(kind), {
      db: database.db,
      ttlMs: 10 * TOMBSTONE_TTL_MS,
      now: clock.now,
    });
    const settings = parseSettings(policy);
    const login = (id: string, password = 'x') =>
      store.admit({
        userId,
        session: { id, instanceId: null, createdAt: clock.now() },
        // As login.ts gives it: the decision as a function and as data (Redis applies the data).
        ...loginAdmission(
          settings,
          { username: 'alice', groups: [] },
          {
            sessionId: id,
            now: clock.now(),
          },
        ),
        lastLoginAt: clock.now(),
        authHash: sessionAuthHash(password),
      });
    return { store, clock, userId, login };
  }

  it('writes the newest tracked session into profile meta.session_id and last_login, in SQLite as upstream keeps them in its database', async () => {
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

  it('reports a logged-out session as logged out, naming the user who did', async () => {
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

  it('evicts the session used least recently under evict-least-recent: a lookup records its use', async () => {
    const { store, clock, userId, login } = setup({
      maxSessions: 2,
      onLimit: 'evict-least-recent',
    });
    await login('first');
    clock.advance(1000);
    await login('second');
    // The first session is used a few minutes later (a request refreshes its last use at most
    // once a minute); the second sits idle.
    clock.advance(5 * 60_000);
    expect(await store.lookup('first')).toMatchObject({ kind: 'live' });
    const result = await login('third');
    expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'second' }] });
    expect((await store.list(userId)).map((session) => session.id)).toEqual(['first', 'third']);
  });

  it('refuses a session issued before its password hash changed, ends it and says why', async () => {
    const { store, clock, userId, login } = setup();
    await login('one');
    expect(await store.lookup('one')).toMatchObject({ kind: 'live' });
    clock.advance(1000);
    // A writer that ends no sessions itself (sqlite3 in a shell, a process that never reached
    // this Redis).
    database.sqlite.prepare('UPDATE users SET password = ? WHERE id = ?').run('y', userId);
    const refused = { kind: 'ended', end: { reason: 'password-change', at: clock.now() } };
    expect(await store.lookup('one')).toEqual({ ...refused, endedNow: { username: 'alice' } });
    expect(await store.list(userId)).toEqual([]);
    const tombstone = database.sqlite
      .prepare('SELECT reason, ended_by AS endedBy FROM session_ends WHERE session_id = ?')
      .get('one');
    expect(tombstone).toEqual({ reason: 'password-change', endedBy: null });
    clock.advance(1000);
    // Told again from the record, and not ended twice.
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
    // A writer that ended no sessions: 'one' and 'two' are of the older password.
    database.sqlite.prepare('UPDATE users SET password = ? WHERE id = ?').run('y', userId);
    expect(await login('four', 'y')).toMatchObject({ admitted: true });
    expect((await store.list(userId)).map((session) => session.id)).toEqual(['four']);
    expect(await store.lookup('one')).toMatchObject({
      kind: 'ended',
      end: { reason: 'password-change' },
    });
  });
});

import { decideLogin, parseSettings } from '@storm-lab/session-policy';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { upsertUser } from '../users.ts';
import { saveAccount, storeSessions } from './accounts.ts';
import { sessionAuthHash } from './auth-hash.ts';
import { endAllSessionsOf } from './sqlite-rows.ts';
import { createSqliteSessionStore } from './sqlite-store.ts';
import { TOMBSTONE_TTL_MS } from './store.ts';

describe('SQLite session store', () => {
  let database: LmsDatabase;
  afterEach(() => database.close());

  function setup(ttlMs = 60_000) {
    database = openDatabase({ path: ':memory:' });
    const clock = createTestClock();
    const userId = upsertUser(database.db, {
      username: 'alice',
      passwordHash: 'x',
      now: clock.now(),
    });
    const store = createSqliteSessionStore({ db: database.db, ttlMs, now: clock.now });
    const settings = parseSettings({});
    const user = { username: 'alice', groups: [] };
    const login = (id: string) =>
      store.admit({
        userId,
        session: { id, instanceId: null, createdAt: clock.now() },
        authHash: sessionAuthHash('x'),
        decide: (live) => decideLogin(settings, user, { sessionId: id, now: clock.now() }, live),
      });
    return { store, clock, userId, login };
  }

  it('tells the evicted session why it ended, for a day', async () => {
    const { store, clock, login } = setup(10 * TOMBSTONE_TTL_MS);
    await login('one');
    clock.advance(1000);
    await login('two');
    expect(await store.lookup('one')).toEqual({
      kind: 'ended',
      end: {
        reason: 'evicted',
        at: clock.now(),
        eviction: {
          byInstance: null,
          bySession: 'two',
          quota: { used: 1, max: 1, scope: 'account', pool: 'default' },
        },
      },
    });
    expect(await store.lookup('two')).toMatchObject({ kind: 'live', sessionId: 'two' });
    clock.advance(TOMBSTONE_TTL_MS);
    expect(await store.lookup('one')).toEqual({ kind: 'none' });
  });

  it('neither authenticates nor counts an expired session', async () => {
    const { store, clock, login } = setup(60_000);
    await login('one');
    clock.advance(60_000);
    expect(await store.lookup('one')).toMatchObject({ kind: 'ended', end: { reason: 'expired' } });
    const result = await login('two');
    expect(result).toMatchObject({ admitted: true, evicted: [] });
  });

  it('refuses a session that recorded no auth hash, as Django flushes one without it', async () => {
    const { store, clock, userId } = setup();
    database.sqlite
      .prepare(
        `INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, tracked)
         VALUES ('legacy', ?, ?, ?, ?, 0)`,
      )
      .run(userId, clock.now(), clock.now() + 60_000, clock.now());
    expect(await store.lookup('legacy')).toMatchObject({
      kind: 'ended',
      end: { reason: 'password-change' },
    });
  });

  it('prunes expired sessions and day-old tombstones', async () => {
    const { store, clock, userId, login } = setup(60_000);
    await login('one');
    await login('two');
    clock.advance(TOMBSTONE_TTL_MS + 1);
    store.prune();
    expect(await store.list(userId)).toEqual([]);
    expect(database.sqlite.prepare('SELECT count(*) AS n FROM session_ends').get()).toEqual({
      n: 0,
    });
    expect(database.sqlite.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({ n: 0 });
  });
});

describe('endAllSessionsOf', () => {
  let database: LmsDatabase;
  afterEach(() => database.close());

  function setup() {
    database = openDatabase({ path: ':memory:' });
    const clock = createTestClock();
    const store = createSqliteSessionStore({ db: database.db, ttlMs: 60_000, now: clock.now });
    const settings = parseSettings({ exemptUsernames: ['alice', 'bob'] });
    const userIds = new Map<string, string>();
    for (const username of ['alice', 'bob']) {
      userIds.set(username, upsertUser(database.db, { username, passwordHash: 'x', now: 0 }));
    }
    const login = (username: string, id: string) =>
      store.admit({
        userId: userIds.get(username)!,
        session: { id, instanceId: null, createdAt: clock.now() },
        authHash: sessionAuthHash('x'),
        decide: (live) =>
          decideLogin(
            settings,
            { username, groups: [] },
            { sessionId: id, now: clock.now() },
            live,
          ),
      });
    return { store, clock, userIds, login };
  }

  it('ends every live session of one user, tells each why, and leaves other users alone', async () => {
    const { store, clock, userIds, login } = setup();
    await login('alice', 'phone');
    await login('alice', 'laptop');
    await login('bob', 'desk');
    clock.advance(1000);
    const alice = userIds.get('alice')!;
    expect(endAllSessionsOf(database.db, alice, 'password-change', clock.now())).toBe(2);
    for (const id of ['phone', 'laptop']) {
      expect(await store.lookup(id)).toEqual({
        kind: 'ended',
        end: { reason: 'password-change', at: clock.now() },
      });
    }
    expect(await store.lookup('desk')).toMatchObject({ kind: 'live' });
    expect(await store.list(alice)).toEqual([]);
    expect(endAllSessionsOf(database.db, alice, 'logged-out', clock.now())).toBe(0);
  });

  it('counts only live sessions: an expired one stays expired', async () => {
    const { store, clock, userIds, login } = setup();
    await login('alice', 'old');
    clock.advance(60_000);
    await login('alice', 'new');
    expect(endAllSessionsOf(database.db, userIds.get('alice')!, 'logged-out', clock.now())).toBe(1);
    expect(await store.lookup('old')).toMatchObject({ kind: 'ended', end: { reason: 'expired' } });
    expect(await store.lookup('new')).toMatchObject({
      kind: 'ended',
      end: { reason: 'logged-out' },
    });
  });

  it('ends the sessions of a user whose password saveAccount sets, in the store it is given', async () => {
    const { store, clock, userIds, login } = setup();
    await login('alice', 'phone');
    await login('bob', 'desk');
    const saved = await saveAccount(database.db, storeSessions(store), {
      username: 'alice',
      passwordHash: 'y',
      now: clock.now(),
    });
    expect(saved).toMatchObject({ passwordSet: true, created: false, sessions: { ended: 1 } });
    expect(await store.list(userIds.get('alice')!)).toEqual([]);
    expect(await store.lookup('desk')).toMatchObject({ kind: 'live' });
    expect(await store.lookup('phone')).toMatchObject({
      kind: 'ended',
      end: { reason: 'password-change' },
    });
  });
});

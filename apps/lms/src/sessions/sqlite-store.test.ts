import { decideLogin, parseSettings } from '@storm-lab/session-policy';
import {
  CONFORMANCE_USERNAMES,
  runSessionRegistryConformance,
} from '@storm-lab/session-policy/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTestClock } from '../testing/fixtures.ts';
import { profileMeta, upsertUser } from '../users.ts';
import { saveAccount, storeSessions } from './accounts.ts';
import { sessionAuthHash } from './auth-hash.ts';
import { endAllSessionsOf } from './sqlite-rows.ts';
import { createSqliteSessionStore } from './sqlite-store.ts';
import { type SessionStore, TOMBSTONE_TTL_MS } from './store.ts';

const CONFORMANCE_NOW = 1_700_000_000_000;
const databases = new Map<SessionStore, LmsDatabase>();

runSessionRegistryConformance({
  name: 'SQLite session store',
  pools: true,
  create: () => {
    const database = openDatabase({ path: ':memory:' });
    for (const username of CONFORMANCE_USERNAMES) {
      upsertUser(database.db, { id: username, username, passwordHash: 'x', now: CONFORMANCE_NOW });
    }
    // The suite's fixture clock starts at CONFORMANCE_NOW, so no session is expired.
    const store = createSqliteSessionStore({
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

  it('writes the newest tracked session into profile meta.session_id, as upstream does', async () => {
    const { userId, login } = setup();
    await login('one');
    await login('two');
    expect(profileMeta(database.db, userId)).toEqual({ session_id: 'two' });
  });

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

  it('reports a logged-out session as logged out', async () => {
    const { store, login } = setup();
    await login('one');
    expect(await store.end('one', 'logged-out')).toBe(true);
    expect(await store.end('one', 'logged-out')).toBe(false);
    expect(await store.lookup('one')).toMatchObject({
      kind: 'ended',
      end: { reason: 'logged-out' },
    });
  });

  it('evicts the session used least recently under evict-least-recent', async () => {
    const { store, clock, userId } = setup(10 * TOMBSTONE_TTL_MS);
    const settings = parseSettings({ maxSessions: 2, onLimit: 'evict-least-recent' });
    const login = (id: string) =>
      store.admit({
        userId,
        session: { id, instanceId: null, createdAt: clock.now() },
        authHash: sessionAuthHash('x'),
        decide: (live) =>
          decideLogin(
            settings,
            { username: 'alice', groups: [] },
            { sessionId: id, now: clock.now() },
            live,
          ),
      });
    await login('first');
    clock.advance(1000);
    await login('second');
    // The first session is used a few minutes later (a request refreshes last_seen_at at most
    // once a minute); the second sits idle.
    clock.advance(5 * 60_000);
    expect(await store.lookup('first')).toMatchObject({ kind: 'live' });
    const result = await login('third');
    expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'second' }] });
    expect((await store.list(userId)).map((session) => session.id)).toEqual(['first', 'third']);
  });

  it('neither authenticates nor counts an expired session', async () => {
    const { store, clock, login } = setup(60_000);
    await login('one');
    clock.advance(60_000);
    expect(await store.lookup('one')).toMatchObject({ kind: 'ended', end: { reason: 'expired' } });
    const result = await login('two');
    expect(result).toMatchObject({ admitted: true, evicted: [] });
  });

  it('refuses a session issued before its password hash changed, ends it and says why', async () => {
    const { store, clock, userId, login } = setup(10 * TOMBSTONE_TTL_MS);
    await login('one');
    expect(await store.lookup('one')).toMatchObject({ kind: 'live' });
    clock.advance(1000);
    // A writer that ends no sessions itself (sqlite3 in a shell, an older CLI).
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
    const { store, clock, userId } = setup();
    const settings = parseSettings({ maxSessions: 2, onLimit: 'deny-new' });
    const login = (id: string, password = 'x') =>
      store.admit({
        userId,
        session: { id, instanceId: null, createdAt: clock.now() },
        authHash: sessionAuthHash(password),
        decide: (live) =>
          decideLogin(
            settings,
            { username: 'alice', groups: [] },
            { sessionId: id, now: clock.now() },
            live,
          ),
      });
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

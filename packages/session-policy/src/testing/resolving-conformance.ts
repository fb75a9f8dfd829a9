import { afterEach, describe, expect, it } from 'vitest';
import { decideLogin, type LiveSession } from '../decide.ts';
import type { ResolvingSessionRegistry } from '../registry.ts';
import { type PolicySettingsInput, parseSettings } from '../settings.ts';
import { createTestUser, loginThrough } from './fixtures.ts';

export interface ResolvingConformanceOptions {
  /** Shown in the describe block, e.g. "Redis registry". */
  name: string;
  /** A fresh, empty registry for each test; its clock is the real one. */
  create: () => ResolvingSessionRegistry | Promise<ResolvingSessionRegistry>;
  /** Releases what `create` opened. */
  destroy?: (registry: ResolvingSessionRegistry) => void | Promise<void>;
}

const BOB = createTestUser({ username: 'bob' });
const POOLED: PolicySettingsInput = { rules: [{ match: { path: 'xqueue' } }] };
const LEAST_RECENT: PolicySettingsInput = { maxSessions: 2, onLimit: 'evict-least-recent' };

/** What a server stores with a session, with names that a careless layout would collide on. */
const ATTRIBUTES = {
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0',
  address: '2001:db8::1',
  pool: 'not the pool',
  tracked: '0',
  createdAt: 'yesterday',
  'a:nested': 'x',
  empty: '',
  note: 'café, 东京, 🙂',
};

/** The live sessions a login's `decide` is given. */
async function liveSeenBy(registry: ResolvingSessionRegistry, sessionId: string, at: number) {
  const settings = parseSettings(LEAST_RECENT);
  let seen: readonly LiveSession[] = [];
  await registry.admit({
    userId: 'alice',
    session: { id: sessionId, instanceId: null, createdAt: at },
    decide: (live) => {
      seen = live;
      return decideLogin(settings, createTestUser(), { sessionId, now: at }, live);
    },
  });
  return seen;
}

/**
 * Runs the contract of a registry that resolves session ids (`get`, `touch`, `removeAllOf`,
 * attributes, `lastSeenAt`) against an implementation. Call it at the top level of a test
 * file, besides `runSessionRegistryConformance`.
 *
 * @example
 * runResolvingRegistryConformance({ name: 'memory', create: createMemorySessionRegistry });
 */
export function runResolvingRegistryConformance(options: ResolvingConformanceOptions): void {
  let opened: ResolvingSessionRegistry[] = [];

  async function fresh(): Promise<ResolvingSessionRegistry> {
    const registry = await options.create();
    opened.push(registry);
    return registry;
  }

  async function ids(registry: ResolvingSessionRegistry, userId = 'alice') {
    return (await registry.list(userId)).map((session) => session.id);
  }

  describe(`resolving registry conformance: ${options.name}`, () => {
    afterEach(async () => {
      for (const registry of opened) await options.destroy?.(registry);
      opened = [];
    });

    it('resolves a live session by id with its pool, instance, attributes and times', async () => {
      const registry = await fresh();
      const before = Date.now();
      await loginThrough(registry, {
        settings: POOLED,
        sessionId: 'api',
        instanceId: 'worker-a',
        path: '/xqueue/login/',
        at: 1000,
        attributes: ATTRIBUTES,
      });
      const session = await registry.get('api');
      expect(session).toEqual({
        id: 'api',
        userId: 'alice',
        createdAt: 1000,
        instanceId: 'worker-a',
        tracked: true,
        pool: 'path:xqueue',
        lastSeenAt: 1000,
        expiresAt: expect.any(Number),
        attributes: ATTRIBUTES,
      });
      expect(session?.expiresAt).toBeGreaterThan(before);
    });

    it('resolves an untracked session without attributes, in the default pool', async () => {
      const registry = await fresh();
      const settings = { exemptUsernames: ['alice'] };
      await loginThrough(registry, { settings, sessionId: 'exempt', at: 2000 });
      expect(await registry.get('exempt')).toMatchObject({
        id: 'exempt',
        instanceId: null,
        tracked: false,
        pool: 'default',
        lastSeenAt: 2000,
        attributes: {},
      });
    });

    it('resolves nothing for an unknown, an evicted or a removed session', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'first' });
      await loginThrough(registry, { sessionId: 'second' });
      expect(await registry.get('unknown')).toBeNull();
      expect(await registry.get('first')).toBeNull();
      expect(await registry.get('second')).toMatchObject({ id: 'second' });
      expect(await registry.remove('second')).toBe(true);
      expect(await registry.get('second')).toBeNull();
    });

    it('lists sessions with their attributes and last use', async () => {
      const registry = await fresh();
      const unlimited = { preventConcurrentLogins: false };
      await loginThrough(registry, { settings: unlimited, sessionId: 'a', at: 1000 });
      await loginThrough(registry, {
        settings: unlimited,
        sessionId: 'b',
        at: 2000,
        attributes: { userAgent: 'curl/8' },
      });
      expect(await registry.touch('a', 5000)).toBe(true);
      expect(await registry.list('alice')).toMatchObject([
        { id: 'a', lastSeenAt: 5000, attributes: {} },
        { id: 'b', lastSeenAt: 2000, attributes: { userAgent: 'curl/8' } },
      ]);
    });

    it('records use with touch, never moving it back, and only for a live session', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'a', at: 1000 });
      expect(await registry.touch('a', 1500)).toBe(true);
      expect(await registry.touch('a', 1200)).toBe(true);
      expect(await registry.get('a')).toMatchObject({ createdAt: 1000, lastSeenAt: 1500 });
      await loginThrough(registry, { sessionId: 'b', at: 2000 });
      expect(await registry.touch('a', 2500)).toBe(false);
      expect(await registry.touch('unknown', 2500)).toBe(false);
      await registry.remove('b');
      expect(await registry.touch('b', 2500)).toBe(false);
      expect(await registry.get('a')).toBeNull();
      expect(await registry.get('b')).toBeNull();
    });

    it('hands decide the last use of each live session', async () => {
      const registry = await fresh();
      await loginThrough(registry, { settings: LEAST_RECENT, sessionId: 'a', at: 1000 });
      expect(await liveSeenBy(registry, 'b', 2000)).toMatchObject([{ id: 'a', lastSeenAt: 1000 }]);
      await registry.touch('a', 3000);
      expect(await liveSeenBy(registry, 'c', 4000)).toMatchObject([
        { id: 'a', lastSeenAt: 3000 },
        { id: 'b', lastSeenAt: 2000 },
      ]);
    });

    it('evicts the session used least recently, not the oldest, under evict-least-recent', async () => {
      const registry = await fresh();
      const settings = LEAST_RECENT;
      await loginThrough(registry, { settings, sessionId: 'older', at: 1000 });
      await loginThrough(registry, { settings, sessionId: 'newer', at: 2000 });
      expect(await registry.touch('older', 3000)).toBe(true);
      const result = await loginThrough(registry, { settings, sessionId: 'third', at: 4000 });
      expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'newer' }] });
      expect(await ids(registry)).toEqual(['older', 'third']);
    });

    it('evicts the oldest under evict-least-recent when nothing was touched', async () => {
      const registry = await fresh();
      const settings = LEAST_RECENT;
      await loginThrough(registry, { settings, sessionId: 'older', at: 1000 });
      await loginThrough(registry, { settings, sessionId: 'newer', at: 2000 });
      const result = await loginThrough(registry, { settings, sessionId: 'third', at: 4000 });
      expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'older' }] });
    });

    it('ends every session of a user but the one kept, tracked or not, oldest first', async () => {
      const registry = await fresh();
      const exempt = { exemptUsernames: ['alice'] };
      await loginThrough(registry, { settings: exempt, sessionId: 'untracked', at: 1000 });
      await loginThrough(registry, { settings: POOLED, sessionId: 'browser', at: 2000 });
      await loginThrough(registry, {
        settings: POOLED,
        sessionId: 'api',
        at: 3000,
        path: '/xqueue/',
      });
      await loginThrough(registry, { user: BOB, sessionId: 'bobs', at: 1500 });

      const ended = await registry.removeAllOf('alice', { except: 'browser' });
      expect(ended).toEqual(['untracked', 'api']);
      expect(await ids(registry)).toEqual(['browser']);
      expect(await registry.get('untracked')).toBeNull();
      expect(await registry.get('api')).toBeNull();
      expect(await registry.get('browser')).toMatchObject({ id: 'browser' });
      expect(await ids(registry, 'bob')).toEqual(['bobs']);
    });

    it('ends them all without an exception, or with one that is not theirs', async () => {
      const registry = await fresh();
      const roomy = { maxSessions: 3 };
      await loginThrough(registry, { settings: roomy, sessionId: 'a', at: 1000 });
      await loginThrough(registry, { settings: roomy, sessionId: 'b', at: 2000 });
      await loginThrough(registry, { user: BOB, sessionId: 'bobs' });
      expect(await registry.removeAllOf('alice', { except: 'bobs' })).toEqual(['a', 'b']);
      expect(await registry.get('bobs')).toMatchObject({ userId: 'bob' });
      await loginThrough(registry, { sessionId: 'c' });
      expect(await registry.removeAllOf('alice')).toEqual(['c']);
      expect(await registry.removeAllOf('alice')).toEqual([]);
      expect(await registry.list('alice')).toEqual([]);
      expect(await registry.removeAllOf('nobody')).toEqual([]);
    });

    it('admits a new login normally after every session ended', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'a' });
      await registry.removeAllOf('alice');
      const result = await loginThrough(registry, { sessionId: 'b' });
      expect(result).toMatchObject({ admitted: true, evicted: [] });
      expect(await ids(registry)).toEqual(['b']);
    });
  });
}

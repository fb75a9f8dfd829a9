import { describe, expect, it } from 'vitest';
import { createMemorySessionRegistry } from './memory-registry.ts';
import {
  createRacySessionRegistry,
  createTestUser,
  loginThrough,
  parallelLogins,
  runResolvingRegistryConformance,
  runSessionRegistryConformance,
} from './testing/index.ts';

runSessionRegistryConformance({
  name: 'in-memory reference registry',
  create: createMemorySessionRegistry,
  parallelLogins: 64,
  rounds: 20,
  pools: true,
});

runResolvingRegistryConformance({
  name: 'in-memory reference registry',
  create: () => createMemorySessionRegistry(),
});

describe('the conformance concurrency check', () => {
  it('catches an upstream-style read-modify-write registry', async () => {
    const { live } = await parallelLogins(createRacySessionRegistry(), 50);
    expect(live.length).toBeGreaterThan(1);
  });

  it('catches it inside a login-path pool, where the other pool is left alone', async () => {
    const registry = createRacySessionRegistry();
    const settings = { rules: [{ match: { path: 'xqueue' } }] };
    await loginThrough(registry, { settings, sessionId: 'browser', path: '/login/' });
    const { live } = await parallelLogins(registry, 50, { settings, path: '/xqueue/login/' });
    expect(live.filter((session) => session.pool === 'path:xqueue').length).toBeGreaterThan(1);
    expect(live.filter((session) => session.pool === 'default')).toMatchObject([{ id: 'browser' }]);
  });
});

describe('in-memory registry: order and results', () => {
  const unlimited = { preventConcurrentLogins: false };

  it('lists sessions oldest first, whatever order they were admitted in', async () => {
    const registry = createMemorySessionRegistry();
    for (const [sessionId, at] of [
      ['mid', 2000],
      ['newest', 3000],
      ['oldest', 1000],
    ] as const) {
      await loginThrough(registry, { settings: unlimited, sessionId, at });
    }
    const ids = (await registry.list('alice')).map((session) => session.id);
    expect(ids).toEqual(['oldest', 'mid', 'newest']);
  });

  it('lists sessions created in the same millisecond by id', async () => {
    const registry = createMemorySessionRegistry();
    for (const sessionId of ['c', 'a', 'b', 'e', 'd']) {
      await loginThrough(registry, { settings: unlimited, sessionId, at: 5000 });
    }
    const ids = (await registry.list('alice')).map((session) => session.id);
    expect(ids).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('reports an unrestricted login exactly: untracked, nothing evicted, not a dry run', async () => {
    const registry = createMemorySessionRegistry();
    await loginThrough(registry, { sessionId: 'a' });
    const result = await loginThrough(registry, { settings: unlimited, sessionId: 'b' });
    expect(result).toEqual({
      admitted: true,
      decision: { outcome: 'unrestricted' },
      tracked: false,
      evicted: [],
      dryRun: false,
    });
    const at = expect.any(Number);
    const session = { createdAt: at, lastSeenAt: at, expiresAt: at, attributes: {} };
    expect(await registry.list('alice')).toEqual([
      { ...session, id: 'a', instanceId: null, userId: 'alice', tracked: true, pool: 'default' },
      { ...session, id: 'b', instanceId: null, userId: 'alice', tracked: false, pool: 'default' },
    ]);
  });

  it('reports an exempt login exactly', async () => {
    const registry = createMemorySessionRegistry();
    const user = createTestUser({ username: 'svc', groups: ['xqueue'] });
    const result = await loginThrough(registry, { user, settings: { exemptGroups: ['xqueue'] } });
    expect(result).toEqual({
      admitted: true,
      decision: { outcome: 'exempt', match: { by: 'group', group: 'xqueue' } },
      tracked: false,
      evicted: [],
      dryRun: false,
    });
  });

  it('reports a denial without admission details and stores nothing', async () => {
    const registry = createMemorySessionRegistry();
    const settings = { onLimit: 'deny-new' as const };
    await loginThrough(registry, { settings, sessionId: 'a' });
    const result = await loginThrough(registry, { settings, sessionId: 'b' });
    expect(result).toEqual({
      admitted: false,
      decision: {
        outcome: 'deny',
        liveSessions: 1,
        rule: {
          maxSessions: 1,
          onLimit: 'deny-new',
          scope: 'account',
          source: { kind: 'default' },
          pool: 'default',
        },
      },
    });
    expect((await registry.list('alice')).map((session) => session.id)).toEqual(['a']);
  });

  it('reports several evictions oldest first and deletes them all', async () => {
    const registry = createMemorySessionRegistry();
    const roomy = { maxSessions: 3 };
    await loginThrough(registry, { settings: roomy, sessionId: 'x', at: 3000 });
    await loginThrough(registry, { settings: roomy, sessionId: 'y', at: 1000 });
    await loginThrough(registry, { settings: roomy, sessionId: 'z', at: 2000 });
    const result = await loginThrough(registry, { sessionId: 'new', at: 4000 });
    expect(result).toMatchObject({
      admitted: true,
      tracked: true,
      dryRun: false,
      evicted: [
        { id: 'y', createdAt: 1000, instanceId: null },
        { id: 'z', createdAt: 2000, instanceId: null },
        { id: 'x', createdAt: 3000, instanceId: null },
      ],
    });
    expect((await registry.list('alice')).map((session) => session.id)).toEqual(['new']);
  });
});

describe('in-memory registry: expiry', () => {
  it('ends a session sessionTtlMs after its admission, however recently it was used', async () => {
    let now = 10_000;
    const registry = createMemorySessionRegistry({ sessionTtlMs: 1000, now: () => now });
    await loginThrough(registry, { sessionId: 'a', at: now });
    expect(await registry.get('a')).toMatchObject({ expiresAt: 11_000 });
    now = 10_999;
    expect(await registry.touch('a', now)).toBe(true);
    expect(await registry.get('a')).toMatchObject({ lastSeenAt: 10_999, expiresAt: 11_000 });
    now = 11_000;
    expect(await registry.get('a')).toBeNull();
    expect(await registry.touch('a', now)).toBe(false);
    expect(await registry.list('alice')).toEqual([]);
    expect(await registry.remove('a')).toBe(false);
    const result = await loginThrough(registry, { sessionId: 'b', at: now });
    expect(result).toMatchObject({ admitted: true, evicted: [] });
  });

  it('gives out copies: changing a returned session changes nothing stored', async () => {
    const registry = createMemorySessionRegistry();
    await loginThrough(registry, { sessionId: 'a', attributes: { userAgent: 'curl/8' } });
    const session = await registry.get('a');
    if (session === null) throw new Error('session a is not live');
    session.attributes.userAgent = 'changed';
    session.lastSeenAt = 0;
    expect(await registry.get('a')).toMatchObject({ attributes: { userAgent: 'curl/8' } });
    expect((await registry.list('alice'))[0]?.lastSeenAt).not.toBe(0);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import type { SessionRegistry } from '../registry.ts';
import { type CrossProcessOptions, declareCrossProcessTests } from './cross-process.ts';
import { createTestUser, loginThrough, parallelLogins } from './fixtures.ts';
import { declarePoolTests } from './pool-conformance.ts';

export interface ConformanceOptions {
  /** Shown in the describe block, e.g. "SQLite session store". */
  name: string;
  /** A fresh, empty registry for each test. */
  create: () => SessionRegistry | Promise<SessionRegistry>;
  /** Releases what `create` opened. */
  destroy?: (registry: SessionRegistry) => void | Promise<void>;
  /** Parallel logins in the concurrency test. Default 50. */
  parallelLogins?: number;
  /** How many times the concurrency test repeats. Default 5. */
  rounds?: number;
  /**
   * For a registry shared between processes: also log the same user in from several OS
   * processes at once (one test per policy shape). Leave out for in-process registries; the
   * suite then declares no such tests at all.
   */
  processes?: CrossProcessOptions;
  /**
   * Also run the login-path pool cases: a browser and an API session of one single-session
   * account under a path rule both stay alive, logins in one pool still evict each other,
   * deny-new is per pool. Set it once the registry records `AdmissionPlan.pool` with each
   * session and returns it as `pool` (live sessions and `list`); with `processes`, it adds a
   * cross-process pool case too. Default false, so a registry written before pools keeps passing.
   */
  pools?: boolean;
}

/**
 * Usernames the suite logs in, each with its username as user id; a store with foreign keys
 * must know these users before each test.
 */
export const CONFORMANCE_USERNAMES = ['alice', 'bob', 'svc'] as const;

/**
 * Runs the session-registry contract against an implementation. Call it at the top level of a
 * test file; it declares its own `describe` block.
 *
 * @example
 * runSessionRegistryConformance({ name: 'memory', create: createMemorySessionRegistry });
 */
export function runSessionRegistryConformance(options: ConformanceOptions): void {
  const count = options.parallelLogins ?? 50;
  const rounds = options.rounds ?? 5;
  let opened: SessionRegistry[] = [];

  async function fresh(): Promise<SessionRegistry> {
    const registry = await options.create();
    opened.push(registry);
    return registry;
  }

  async function ids(registry: SessionRegistry, userId: string) {
    return (await registry.list(userId)).map((session) => session.id);
  }

  describe(`session registry conformance: ${options.name}`, () => {
    afterEach(async () => {
      for (const registry of opened) await options.destroy?.(registry);
      opened = [];
    });

    it('records the first login of a non-exempt user as a tracked session', async () => {
      const registry = await fresh();
      const result = await loginThrough(registry, { sessionId: 'first' });
      expect(result).toMatchObject({ admitted: true, tracked: true, evicted: [] });
      expect(await registry.list('alice')).toMatchObject([{ id: 'first', tracked: true }]);
    });

    it('evicts the previous session of a non-exempt user', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'first' });
      const result = await loginThrough(registry, { sessionId: 'second' });
      expect(result).toMatchObject({ admitted: true, evicted: [{ id: 'first' }] });
      expect(await ids(registry, 'alice')).toEqual(['second']);
    });

    it('neither records nor deletes anything for an exempt user', async () => {
      const registry = await fresh();
      const settings = { exemptUsernames: ['svc'] };
      const user = createTestUser({ username: 'svc' });
      await loginThrough(registry, { user, settings, sessionId: 'a' });
      const result = await loginThrough(registry, { user, settings, sessionId: 'b' });
      expect(result).toMatchObject({ admitted: true, tracked: false, evicted: [] });
      const live = await registry.list('svc');
      expect(live.map((session) => [session.id, session.tracked])).toEqual([
        ['a', false],
        ['b', false],
      ]);
    });

    it('evicts nothing when the flag is off', async () => {
      const registry = await fresh();
      const settings = { preventConcurrentLogins: false };
      await loginThrough(registry, { settings, sessionId: 'a' });
      await loginThrough(registry, { settings, sessionId: 'b' });
      expect(await ids(registry, 'alice')).toEqual(['a', 'b']);
    });

    it('does not count untracked sessions when enforcement starts later', async () => {
      const registry = await fresh();
      await loginThrough(registry, { settings: { exemptUsernames: ['alice'] }, sessionId: 'a' });
      const result = await loginThrough(registry, { sessionId: 'b' });
      expect(result).toMatchObject({ admitted: true, evicted: [] });
      expect(await ids(registry, 'alice')).toEqual(['a', 'b']);
    });

    it('keeps other users apart', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'a' });
      await loginThrough(registry, { user: createTestUser({ username: 'bob' }), sessionId: 'b' });
      expect(await ids(registry, 'alice')).toEqual(['a']);
      expect(await ids(registry, 'bob')).toEqual(['b']);
    });

    it('denies a new login at the limit under deny-new and stores nothing for it', async () => {
      const registry = await fresh();
      const settings = { onLimit: 'deny-new' as const };
      await loginThrough(registry, { settings, sessionId: 'a' });
      const result = await loginThrough(registry, { settings, sessionId: 'b' });
      expect(result).toMatchObject({ admitted: false, decision: { outcome: 'deny' } });
      expect(await ids(registry, 'alice')).toEqual(['a']);
    });

    it('keeps the newest maxSessions sessions under evict-oldest', async () => {
      const registry = await fresh();
      const settings = { maxSessions: 3 };
      for (const id of ['a', 'b', 'c', 'd', 'e'])
        await loginThrough(registry, { settings, sessionId: id });
      expect(await ids(registry, 'alice')).toEqual(['c', 'd', 'e']);
    });

    it('replaces only the same instance under instance scope', async () => {
      const registry = await fresh();
      const settings = { scope: 'instance' as const };
      await loginThrough(registry, { settings, sessionId: 'a1', instanceId: 'worker-a' });
      await loginThrough(registry, { settings, sessionId: 'b1', instanceId: 'worker-b' });
      const result = await loginThrough(registry, {
        settings,
        sessionId: 'a2',
        instanceId: 'worker-a',
      });
      expect(result).toMatchObject({ evicted: [{ id: 'a1' }] });
      expect((await ids(registry, 'alice')).sort()).toEqual(['a2', 'b1']);
    });

    it('reports but keeps evictions in dry run', async () => {
      const registry = await fresh();
      const settings = { dryRun: true };
      await loginThrough(registry, { settings, sessionId: 'a' });
      const result = await loginThrough(registry, { settings, sessionId: 'b' });
      expect(result).toMatchObject({ admitted: true, dryRun: true, evicted: [{ id: 'a' }] });
      expect(await ids(registry, 'alice')).toEqual(['a', 'b']);
    });

    it('removes a session once', async () => {
      const registry = await fresh();
      await loginThrough(registry, { sessionId: 'a' });
      expect(await registry.remove('a')).toBe(true);
      expect(await registry.remove('a')).toBe(false);
      expect(await registry.list('alice')).toEqual([]);
    });

    it(`leaves exactly one live session after ${count} parallel logins (x${rounds})`, async () => {
      for (let round = 0; round < rounds; round++) {
        const registry = await fresh();
        const { results, live } = await parallelLogins(registry, count);
        expect(live).toHaveLength(1);
        const evicted = results.flatMap((result) => (result.admitted ? result.evicted : []));
        expect(evicted).toHaveLength(count - 1);
      }
    });

    it('leaves exactly maxSessions live sessions after parallel logins', async () => {
      const registry = await fresh();
      const { live } = await parallelLogins(registry, count, { settings: { maxSessions: 4 } });
      expect(live).toHaveLength(4);
    });

    if (options.pools) declarePoolTests(fresh, count);
    if (options.processes) {
      declareCrossProcessTests(options.processes, fresh, { pools: options.pools ?? false });
    }
  });
}

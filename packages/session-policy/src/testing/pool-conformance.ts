import { describe, expect, it } from 'vitest';
import { DEFAULT_POOL } from '../decide.ts';
import type { SessionRegistry } from '../registry.ts';
import type { PolicySettingsInput } from '../settings.ts';
import { loginThrough } from './fixtures.ts';

/** A grader's login through the xqueue API and a person's login in a browser, one account. */
export const API_LOGIN_PATH = '/xqueue/login/';
export const BROWSER_LOGIN_PATH = '/login/';
const API_POOL = 'path:xqueue';

/** Single session per pool: the API logins get a pool of their own. */
const POOLED: PolicySettingsInput = { rules: [{ match: { path: 'xqueue' } }] };

async function poolsOf(registry: SessionRegistry): Promise<[string, string][]> {
  const live = await registry.list('alice');
  return live.map((session) => [session.id, session.pool ?? DEFAULT_POOL]);
}

/**
 * Declares the login-path pool cases of the conformance suite (`pools: true`); call inside its
 * describe block. They need a registry that records `AdmissionPlan.pool` with each session and
 * gives it back as `pool` in the live sessions and in `list`.
 */
export function declarePoolTests(fresh: () => Promise<SessionRegistry>, count: number): void {
  describe('login-path pools', () => {
    it.each([
      ['browser first', ['browser', 'api']],
      ['API first', ['api', 'browser']],
    ] as const)(
      'keeps the browser and the API session of a single-session account alive (%s)',
      async (_, order) => {
        const registry = await fresh();
        const results = [];
        for (const sessionId of order) {
          const path = sessionId === 'api' ? API_LOGIN_PATH : BROWSER_LOGIN_PATH;
          results.push(await loginThrough(registry, { settings: POOLED, sessionId, path }));
        }
        for (const result of results) {
          expect(result).toMatchObject({ admitted: true, tracked: true, evicted: [] });
        }
        const poolOf = { api: API_POOL, browser: DEFAULT_POOL };
        expect(await poolsOf(registry)).toEqual(order.map((id) => [id, poolOf[id]]));
      },
    );

    it('still evicts the earlier session of the same pool, and only that one', async () => {
      const registry = await fresh();
      const login = (sessionId: string, path: string) =>
        loginThrough(registry, { settings: POOLED, sessionId, path });
      await login('browser-1', BROWSER_LOGIN_PATH);
      await login('api-1', API_LOGIN_PATH);
      expect(await login('api-2', API_LOGIN_PATH)).toMatchObject({
        admitted: true,
        evicted: [{ id: 'api-1' }],
      });
      expect(await login('browser-2', BROWSER_LOGIN_PATH)).toMatchObject({
        admitted: true,
        evicted: [{ id: 'browser-1' }],
      });
      expect(await poolsOf(registry)).toEqual([
        ['api-2', API_POOL],
        ['browser-2', DEFAULT_POOL],
      ]);
    });

    it('denies a new login under deny-new only when its own pool is full', async () => {
      const registry = await fresh();
      const settings = { ...POOLED, onLimit: 'deny-new' as const };
      const login = (sessionId: string, path: string) =>
        loginThrough(registry, { settings, sessionId, path });
      await login('browser-1', BROWSER_LOGIN_PATH);
      expect(await login('api-1', API_LOGIN_PATH)).toMatchObject({ admitted: true, evicted: [] });
      expect(await login('api-2', API_LOGIN_PATH)).toMatchObject({
        admitted: false,
        decision: { outcome: 'deny', liveSessions: 1, rule: { pool: API_POOL } },
      });
      expect(await login('browser-2', BROWSER_LOGIN_PATH)).toMatchObject({
        admitted: false,
        decision: { outcome: 'deny', liveSessions: 1, rule: { pool: DEFAULT_POOL } },
      });
      expect(await poolsOf(registry)).toEqual([
        ['browser-1', DEFAULT_POOL],
        ['api-1', API_POOL],
      ]);
    });

    it('replaces only the same instance within a pool under instance scope', async () => {
      const registry = await fresh();
      const settings = { rules: [{ match: { path: 'xqueue' }, scope: 'instance' as const }] };
      const login = (sessionId: string, path: string, instanceId: string | null) =>
        loginThrough(registry, { settings, sessionId, path, instanceId });
      await login('browser-1', BROWSER_LOGIN_PATH, 'worker-a');
      await login('a-1', API_LOGIN_PATH, 'worker-a');
      await login('b-1', API_LOGIN_PATH, 'worker-b');
      expect(await login('a-2', API_LOGIN_PATH, 'worker-a')).toMatchObject({
        evicted: [{ id: 'a-1' }],
      });
      expect(await login('browser-2', BROWSER_LOGIN_PATH, null)).toMatchObject({
        evicted: [{ id: 'browser-1' }],
      });
      const ids = (await registry.list('alice')).map((session) => session.id);
      expect(ids.sort()).toEqual(['a-2', 'b-1', 'browser-2']);
    });

    it('reports but keeps only the same pool in dry run', async () => {
      const registry = await fresh();
      const settings = { ...POOLED, dryRun: true };
      const login = (sessionId: string, path: string) =>
        loginThrough(registry, { settings, sessionId, path });
      await login('browser-1', BROWSER_LOGIN_PATH);
      await login('api-1', API_LOGIN_PATH);
      const result = await login('api-2', API_LOGIN_PATH);
      expect(result).toMatchObject({ admitted: true, dryRun: true });
      expect(result.admitted && result.evicted.map((session) => session.id)).toEqual(['api-1']);
      expect((await poolsOf(registry)).map(([id]) => id)).toEqual(['browser-1', 'api-1', 'api-2']);
    });

    it(`leaves exactly one session per pool after ${count} parallel logins on both paths`, async () => {
      const registry = await fresh();
      const results = await Promise.all(
        Array.from({ length: count }, (_, index) =>
          loginThrough(registry, {
            settings: POOLED,
            path: index % 2 === 0 ? API_LOGIN_PATH : BROWSER_LOGIN_PATH,
          }),
        ),
      );
      const pools = (await poolsOf(registry)).map(([, pool]) => pool);
      expect(pools.sort()).toEqual([DEFAULT_POOL, API_POOL].sort());
      const evicted = results.flatMap((result) => (result.admitted ? result.evicted : []));
      expect(evicted).toHaveLength(count - 2);
    });
  });
}

import { describe, expect, it } from 'vitest';
import { type LiveSession, type LoginDecision, resolveRule } from './decide.ts';
import { admitResult, planAdmission } from './registry.ts';
import { parseSettings } from './settings.ts';
import { createTestUser } from './testing/fixtures.ts';

const rule = resolveRule(parseSettings(), createTestUser());
const old: LiveSession[] = [
  { id: 'a', createdAt: 1, instanceId: null },
  { id: 'b', createdAt: 2, instanceId: null },
];
const nothing = { deleteIds: [], evicted: [], dryRun: false, pool: 'default' };

/** An allowed login that evicts the two `old` sessions (or, in dry run, would). */
function allowEvictingOld(dryRun: boolean): LoginDecision {
  return { outcome: 'allow', rule, evict: old, dryRun, liveSessions: old.length };
}

describe('planAdmission: the writes every registry performs for a decision', () => {
  it('admits an unrestricted login untracked and deletes nothing', () => {
    expect(planAdmission({ outcome: 'unrestricted' })).toEqual({
      admit: true,
      track: false,
      ...nothing,
    });
  });

  it('admits an exempt login untracked and deletes nothing', () => {
    const decision: LoginDecision = { outcome: 'exempt', match: { by: 'group', group: 'xqueue' } };
    expect(planAdmission(decision)).toEqual({ admit: true, track: false, ...nothing });
  });

  it('stores and deletes nothing for a denied login', () => {
    const decision: LoginDecision = { outcome: 'deny', rule, liveSessions: 2 };
    expect(planAdmission(decision)).toEqual({ admit: false, track: false, ...nothing });
  });

  it('tracks an allowed login and deletes exactly the evicted sessions', () => {
    const decision = allowEvictingOld(false);
    expect(planAdmission(decision)).toEqual({
      admit: true,
      track: true,
      deleteIds: ['a', 'b'],
      evicted: old,
      dryRun: false,
      pool: 'default',
    });
  });

  it('in dry run reports the evictions but deletes nothing', () => {
    const decision = allowEvictingOld(true);
    expect(planAdmission(decision)).toEqual({
      admit: true,
      track: true,
      deleteIds: [],
      evicted: old,
      dryRun: true,
      pool: 'default',
    });
  });

  it('records an allowed login in the pool of its path rule', () => {
    const settings = parseSettings({ rules: [{ match: { path: 'xqueue' } }] });
    const api = resolveRule(settings, createTestUser(), '/xqueue/login/');
    const allow: LoginDecision = {
      outcome: 'allow',
      rule: api,
      evict: [],
      dryRun: false,
      liveSessions: 0,
    };
    const deny: LoginDecision = { outcome: 'deny', rule: api, liveSessions: 1 };
    expect(planAdmission(allow).pool).toBe('path:xqueue');
    expect(planAdmission(deny).pool).toBe('path:xqueue');
  });
});

describe('admitResult', () => {
  it('reports a denial without admission details', () => {
    const decision: LoginDecision = { outcome: 'deny', rule, liveSessions: 1 };
    expect(admitResult(decision, planAdmission(decision))).toEqual({ admitted: false, decision });
  });

  it('reports an admission with what was tracked and evicted', () => {
    const decision = allowEvictingOld(true);
    expect(admitResult(decision, planAdmission(decision))).toEqual({
      admitted: true,
      decision,
      tracked: true,
      evicted: old,
      dryRun: true,
    });
  });
});

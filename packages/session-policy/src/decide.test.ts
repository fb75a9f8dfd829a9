import { describe, expect, it } from 'vitest';
import { decideLogin, type LiveSession, type PolicyUser, resolveRule } from './decide.ts';
import { type PolicySettingsInput, parseSettings } from './settings.ts';
import { createTestUser } from './testing/fixtures.ts';

const NOW = 1_700_000_000_000;
const previous: LiveSession = { id: 'old', createdAt: NOW - 60_000, instanceId: null };

function decide(
  input: PolicySettingsInput,
  user: PolicyUser,
  live: LiveSession[] = [previous],
  instanceId: string | null = null,
) {
  return decideLogin(parseSettings(input), user, { sessionId: 'new', instanceId, now: NOW }, live);
}

const svc = createTestUser({ username: 'xqueue_svc', groups: ['xqueue'] });
const student = createTestUser({ username: 'student1', groups: ['students'] });

describe('decideLogin: the upstream decision table', () => {
  it('flag off: nothing is evicted and nothing recorded', () => {
    expect(decide({ preventConcurrentLogins: false }, svc)).toEqual({ outcome: 'unrestricted' });
  });

  it('flag on, not exempt: the previous session is evicted', () => {
    expect(decide({}, svc)).toMatchObject({ outcome: 'allow', evict: [previous], dryRun: false });
  });

  it('exempt by username: nothing evicted, says which username matched', () => {
    expect(decide({ exemptUsernames: ['xqueue_svc'] }, svc)).toEqual({
      outcome: 'exempt',
      match: { by: 'username', username: 'xqueue_svc' },
    });
  });

  it('exempt by group: membership in any listed group exempts', () => {
    expect(decide({ exemptGroups: ['staff', 'xqueue'] }, svc)).toEqual({
      outcome: 'exempt',
      match: { by: 'group', group: 'xqueue' },
    });
  });

  it('a username that differs only in case is NOT exempt', () => {
    expect(decide({ exemptUsernames: ['XQueue_Svc'] }, svc)).toMatchObject({
      outcome: 'allow',
      evict: [previous],
    });
  });

  it('a group that differs only in case is NOT exempt', () => {
    expect(decide({ exemptGroups: ['XQUEUE'] }, svc)).toMatchObject({ outcome: 'allow' });
  });

  it('empty lists change nothing', () => {
    expect(decide({ exemptUsernames: [], exemptGroups: [] }, svc)).toEqual(decide({}, svc));
  });

  it('a person stays single-session while the service account is exempt', () => {
    expect(decide({ exemptGroups: ['xqueue'] }, student)).toMatchObject({
      outcome: 'allow',
      evict: [previous],
    });
  });

  it('first login has nothing to evict', () => {
    expect(decide({}, student, [])).toMatchObject({ outcome: 'allow', evict: [] });
  });
});

describe('decideLogin: beyond upstream', () => {
  const sessions = (count: number): LiveSession[] =>
    Array.from({ length: count }, (_, index) => ({
      id: `s${index}`,
      createdAt: NOW - 1000 * (count - index),
      instanceId: null,
    }));

  it('evicts only the oldest sessions above maxSessions', () => {
    const decision = decide({ maxSessions: 3 }, student, sessions(4));
    expect(decision).toMatchObject({ outcome: 'allow', evict: [{ id: 's0' }, { id: 's1' }] });
  });

  it('evicts the sessions used least recently under evict-least-recent', () => {
    const live: LiveSession[] = [
      { id: 'old-busy', createdAt: NOW - 3000, instanceId: null, lastSeenAt: NOW - 10 },
      { id: 'mid-idle', createdAt: NOW - 2000, instanceId: null, lastSeenAt: NOW - 1900 },
      // No lastSeenAt: its creation stands in, the same as mid-idle's use; created later.
      { id: 'new-unseen', createdAt: NOW - 1900, instanceId: null },
    ];
    expect(decide({ maxSessions: 2, onLimit: 'evict-least-recent' }, student, live)).toMatchObject({
      outcome: 'allow',
      evict: [{ id: 'mid-idle' }, { id: 'new-unseen' }],
    });
    // The same sessions by age: the busy one goes first.
    expect(decide({ maxSessions: 2 }, student, live)).toMatchObject({
      evict: [{ id: 'old-busy' }, { id: 'mid-idle' }],
    });
  });

  it('denies a new login at the limit under deny-new', () => {
    expect(decide({ maxSessions: 2, onLimit: 'deny-new' }, student, sessions(2))).toMatchObject({
      outcome: 'deny',
      liveSessions: 2,
    });
  });

  it('instance scope replaces only the session of the same instance', () => {
    const live: LiveSession[] = [
      { id: 'a1', createdAt: NOW - 2000, instanceId: 'a' },
      { id: 'b1', createdAt: NOW - 1000, instanceId: 'b' },
    ];
    expect(decide({ scope: 'instance' }, svc, live, 'a')).toMatchObject({ evict: [{ id: 'a1' }] });
    expect(decide({ scope: 'instance' }, svc, live, 'c')).toMatchObject({ evict: [] });
  });

  it('dry run decides the same evictions and flags them', () => {
    expect(decide({ dryRun: true }, svc)).toMatchObject({
      outcome: 'allow',
      evict: [previous],
      dryRun: true,
    });
  });

  it('ignores the new session itself if the store already lists it', () => {
    const live = [{ id: 'new', createdAt: NOW, instanceId: null }];
    expect(decide({}, svc, live)).toMatchObject({ evict: [] });
  });

  it('an exemption wins over a per-account rule', () => {
    const input = {
      exemptGroups: ['xqueue'],
      rules: [{ match: { group: 'xqueue' }, maxSessions: 2 }],
    };
    expect(decide(input, svc).outcome).toBe('exempt');
  });
});

describe('resolveRule', () => {
  const settings = parseSettings({
    maxSessions: 2,
    rules: [
      { match: { group: 'xqueue' }, maxSessions: 16, scope: 'instance' },
      { match: { username: 'xqueue_svc' }, onLimit: 'deny-new' },
    ],
  });

  it('prefers a username rule over a group rule, keeping defaults for what it omits', () => {
    expect(resolveRule(settings, svc)).toEqual({
      maxSessions: 2,
      onLimit: 'deny-new',
      scope: 'account',
      source: { kind: 'username', username: 'xqueue_svc' },
    });
  });

  it('uses the first matching group rule', () => {
    expect(
      resolveRule(settings, createTestUser({ username: 'other', groups: ['xqueue'] })),
    ).toMatchObject({
      maxSessions: 16,
      scope: 'instance',
      source: { kind: 'group', group: 'xqueue' },
    });
  });

  it('falls back to the defaults', () => {
    expect(resolveRule(settings, student)).toMatchObject({
      maxSessions: 2,
      source: { kind: 'default' },
    });
  });
});

describe('decideLogin: which sessions are evicted', () => {
  const evictedIds = (decision: ReturnType<typeof decide>) =>
    decision.outcome === 'allow' ? decision.evict.map((session) => session.id) : decision.outcome;

  it('evicts the oldest first, whatever order the store lists them in', () => {
    const live: LiveSession[] = [
      { id: 'mid', createdAt: NOW - 2000, instanceId: null },
      { id: 'newest', createdAt: NOW - 1000, instanceId: null },
      { id: 'oldest', createdAt: NOW - 3000, instanceId: null },
    ];
    expect(evictedIds(decide({ maxSessions: 2 }, student, live))).toEqual(['oldest', 'mid']);
  });

  it('breaks a tie in creation time by session id, so every store evicts the same sessions', () => {
    const orders = [
      ['a', 'b', 'c'],
      ['a', 'c', 'b'],
      ['b', 'a', 'c'],
      ['b', 'c', 'a'],
      ['c', 'a', 'b'],
      ['c', 'b', 'a'],
    ];
    for (const ids of orders) {
      const tied = ids.map((id) => ({ id, createdAt: NOW - 1000, instanceId: null }));
      expect(evictedIds(decide({ maxSessions: 2 }, student, tied)), ids.join()).toEqual(['a', 'b']);
      expect(evictedIds(decide({ maxSessions: 3 }, student, tied)), ids.join()).toEqual(['a']);
    }
  });

  it('account scope counts the sessions of every instance', () => {
    const live: LiveSession[] = [{ id: 'b1', createdAt: NOW - 1000, instanceId: 'b' }];
    expect(decide({}, svc, live, 'a')).toMatchObject({ outcome: 'allow', evict: [{ id: 'b1' }] });
    expect(decide({}, svc, live, null)).toMatchObject({ outcome: 'allow', evict: [{ id: 'b1' }] });
  });
});

import { describe, expect, it } from 'vitest';
import {
  applyLimit,
  decideLogin,
  type LiveSession,
  loginAdmission,
  type PolicyUser,
  resolveLogin,
  resolveRule,
} from './decide.ts';
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
      pool: 'default',
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

  it("counts the sessions that competed for the limit with the decision, the login's own and the one it replaces not", () => {
    const live: LiveSession[] = [
      { id: 'a1', createdAt: NOW - 4000, instanceId: 'a' },
      { id: 'a2', createdAt: NOW - 3000, instanceId: 'a' },
      { id: 'b1', createdAt: NOW - 2000, instanceId: 'b' },
      { id: 'api', createdAt: NOW - 1500, instanceId: 'a', pool: 'path:xqueue' },
      { id: 'current', createdAt: NOW - 1000, instanceId: 'a' },
      { id: 'new', createdAt: NOW, instanceId: 'a' },
    ];
    const settings = parseSettings({ maxSessions: 2 });
    const context = { sessionId: 'new', instanceId: 'a', now: NOW, replacing: 'current' };
    expect(decideLogin(settings, student, context, live)).toMatchObject({
      outcome: 'allow',
      evict: [{ id: 'a1' }, { id: 'a2' }],
      liveSessions: 3,
    });
    const perInstance = parseSettings({ maxSessions: 2, scope: 'instance' });
    expect(decideLogin(perInstance, student, context, live)).toMatchObject({
      evict: [{ id: 'a1' }],
      liveSessions: 2,
    });
    expect(decideLogin(parseSettings({ maxSessions: 5 }), student, context, live)).toMatchObject({
      evict: [],
      liveSessions: 3,
    });
    const denying = parseSettings({ maxSessions: 3, onLimit: 'deny-new' });
    expect(decideLogin(denying, student, context, live)).toMatchObject({
      outcome: 'deny',
      liveSessions: 3,
    });
  });

  it('account scope counts the sessions of every instance', () => {
    const live: LiveSession[] = [{ id: 'b1', createdAt: NOW - 1000, instanceId: 'b' }];
    expect(decide({}, svc, live, 'a')).toMatchObject({ outcome: 'allow', evict: [{ id: 'b1' }] });
    expect(decide({}, svc, live, null)).toMatchObject({ outcome: 'allow', evict: [{ id: 'b1' }] });
  });
});

const API_PATH = '/xqueue/login/';
const BROWSER_PATH = '/login/';
const grader = createTestUser({ username: 'grader2', groups: ['xqueue'] });
const USERS = { svc, grader, student };
const PATHS = { api: API_PATH, browser: BROWSER_PATH, no: undefined };

describe('resolveRule: login paths', () => {
  const xqueueRule = parseSettings({ rules: [{ match: { path: 'xqueue' }, maxSessions: 4 }] });

  it.each([
    ['/xqueue/login/', true],
    ['/xqueue', true],
    ['xqueue', true],
    ['/api/xqueue/submit/', true],
    ['//xqueue//', true],
    ['/xqueue/login/?next=/', true],
    ['/xqueuex/login', false],
    ['/pre-xqueue/login', false],
    ['/xqueue.json', false],
    ['/XQueue/login', false],
    ['/x%71ueue/login', false],
    ['/login?next=/xqueue/', false],
    ['/login#/xqueue/', false],
    ['/', false],
    ['', false],
    [undefined, false],
  ])('login path %j has "xqueue" as a whole segment: %s', (path, matches) => {
    expect(resolveRule(xqueueRule, student, path)).toMatchObject(
      matches
        ? { maxSessions: 4, source: { kind: 'path', path: 'xqueue' }, pool: 'path:xqueue' }
        : { maxSessions: 1, source: { kind: 'default' }, pool: 'default' },
    );
  });

  const svcOnXqueue = { username: 'xqueue_svc', path: 'xqueue' };
  const graderOnXqueue = { group: 'xqueue', path: 'xqueue' };

  it.each([
    [svcOnXqueue, 'svc', 'api', true],
    [svcOnXqueue, 'svc', 'browser', false],
    [svcOnXqueue, 'student', 'api', false],
    [graderOnXqueue, 'grader', 'api', true],
    [graderOnXqueue, 'grader', 'browser', false],
    [graderOnXqueue, 'grader', 'no', false],
    [graderOnXqueue, 'student', 'api', false],
  ] as const)(
    'a rule on %j applies to %s on %s path only when both match: %s',
    (match, user, path, applies) => {
      const settings = parseSettings({ rules: [{ match, maxSessions: 3 }] });
      const rule = resolveRule(settings, USERS[user], PATHS[path]);
      expect([rule.maxSessions, rule.pool]).toEqual(applies ? [3, 'path:xqueue'] : [1, 'default']);
    },
  );

  // Least specific first, so that list order cannot explain a winner. svc matches all five.
  const byPrecedence = [
    { match: { group: 'xqueue' }, maxSessions: 5 },
    { match: { username: 'xqueue_svc' }, maxSessions: 4 },
    { match: { path: 'xqueue' }, maxSessions: 3 },
    { match: graderOnXqueue, maxSessions: 2 },
    { match: svcOnXqueue, maxSessions: 6 },
  ];
  const svcPath = { kind: 'username', username: 'xqueue_svc', path: 'xqueue' } as const;
  const graderPath = { kind: 'group', group: 'xqueue', path: 'xqueue' } as const;
  const svcOnly = { kind: 'username', username: 'xqueue_svc' } as const;

  it.each([
    // Each row drops the rule that won the row before: every step of the order is checked.
    [5, 'svc', 'api', 6, svcPath],
    [4, 'svc', 'api', 2, graderPath],
    [3, 'svc', 'api', 3, { kind: 'path', path: 'xqueue' }],
    [2, 'svc', 'api', 4, svcOnly],
    [1, 'svc', 'api', 5, { kind: 'group', group: 'xqueue' }],
    [0, 'svc', 'api', 1, { kind: 'default' }],
    [5, 'grader', 'api', 2, graderPath],
    [5, 'student', 'api', 3, { kind: 'path', path: 'xqueue' }],
    [5, 'svc', 'browser', 4, svcOnly],
    [5, 'grader', 'browser', 5, { kind: 'group', group: 'xqueue' }],
    [5, 'student', 'browser', 1, { kind: 'default' }],
  ] as const)(
    'precedence: of the %i least specific rules, for %s on %s path the one of limit %i wins (%j)',
    (count, user, path, maxSessions, source) => {
      const settings = parseSettings({ rules: byPrecedence.slice(0, count) });
      const rule = resolveRule(settings, USERS[user], PATHS[path]);
      expect(rule.source).toEqual(source);
      expect(rule.maxSessions).toBe(maxSessions);
    },
  );

  it.each([
    [['xqueue', 'api'], 'path:xqueue'],
    [['api', 'xqueue'], 'path:api'],
  ])('between two path rules that both apply, the first listed wins (%j)', (paths, pool) => {
    const rules = paths.map((path) => ({ match: { path } }));
    expect(resolveRule(parseSettings({ rules }), student, '/api/xqueue/').pool).toBe(pool);
  });

  it.each([
    [[], 'default'],
    [[{ match: { username: 'student1' } }], 'default'],
    [[{ match: { group: 'students' } }], 'default'],
    [[{ match: { path: 'xqueue' } }], 'path:xqueue'],
    [[{ match: { username: 'student1', path: 'grader-api' } }], 'path:grader-api'],
    [[{ match: { group: 'students', path: 'xqueue' } }], 'path:xqueue'],
  ])('names the pool after the path of the rule that applies: %j -> %s', (rules, pool) => {
    const path = '/grader-api/xqueue/login/';
    expect(resolveRule(parseSettings({ rules }), student, path).pool).toBe(pool);
  });
});

describe('decideLogin: login-path pools', () => {
  const LIVE = {
    // Recorded before pools (no `pool`): in the default pool.
    browser: { id: 'browser', createdAt: NOW - 3000, instanceId: 'a' },
    'api-a': { id: 'api-a', createdAt: NOW - 2000, instanceId: 'a', pool: 'path:xqueue' },
    'api-b': { id: 'api-b', createdAt: NOW - 1000, instanceId: 'b', pool: 'path:xqueue' },
  } satisfies Record<string, LiveSession>;
  const xqueue = { path: 'xqueue' };
  const SETTINGS = {
    pooled: { rules: [{ match: xqueue }] },
    'no rule': {},
    'roomy API': { rules: [{ match: xqueue, maxSessions: 3 }] },
    'API by instance': { rules: [{ match: xqueue, scope: 'instance' }] },
    'deny-new': { onLimit: 'deny-new', rules: [{ match: xqueue }] },
    'API deny-new': { rules: [{ match: xqueue, onLimit: 'deny-new' }] },
    'dry run': { dryRun: true, rules: [{ match: xqueue }] },
    'svc exempt': { exemptUsernames: ['xqueue_svc'], rules: [{ match: xqueue }] },
  } satisfies Record<string, PolicySettingsInput>;

  /** What a user would see of a decision: its pool, and what it ends or that it denies. */
  function outcome(
    settings: keyof typeof SETTINGS,
    path: keyof typeof PATHS,
    live: readonly (keyof typeof LIVE)[],
    user = student,
  ): string {
    const context = { sessionId: 'new', instanceId: 'a', now: NOW, path: PATHS[path] };
    const sessions = live.map((id) => LIVE[id]);
    const decision = decideLogin(parseSettings(SETTINGS[settings]), user, context, sessions);
    if (decision.outcome === 'deny') {
      return `${decision.rule.pool}: denied (${decision.liveSessions} live)`;
    }
    if (decision.outcome !== 'allow') return decision.outcome;
    const ends = decision.evict.map((session) => session.id).join(' ') || 'nothing';
    return `${decision.rule.pool}: ${decision.dryRun ? 'would end' : 'ends'} ${ends}`;
  }

  it.each([
    ['pooled', 'api', ['browser', 'api-b'], 'path:xqueue: ends api-b'],
    ['pooled', 'browser', ['browser', 'api-b'], 'default: ends browser'],
    ['pooled', 'api', ['browser'], 'path:xqueue: ends nothing'],
    ['pooled', 'browser', ['api-a', 'api-b'], 'default: ends nothing'],
    ['pooled', 'no', ['browser', 'api-b'], 'default: ends browser'],
    ['no rule', 'api', ['api-b'], 'default: ends nothing'],
    ['roomy API', 'api', ['browser', 'api-a', 'api-b'], 'path:xqueue: ends nothing'],
    ['roomy API', 'browser', ['browser', 'api-a', 'api-b'], 'default: ends browser'],
    ['API by instance', 'api', ['browser', 'api-a', 'api-b'], 'path:xqueue: ends api-a'],
    ['API by instance', 'browser', ['browser', 'api-a', 'api-b'], 'default: ends browser'],
    ['deny-new', 'api', ['browser'], 'path:xqueue: ends nothing'],
    ['deny-new', 'api', ['browser', 'api-b'], 'path:xqueue: denied (1 live)'],
    ['deny-new', 'browser', ['api-a', 'api-b'], 'default: ends nothing'],
    ['deny-new', 'browser', ['browser', 'api-a'], 'default: denied (1 live)'],
    ['API deny-new', 'api', ['browser', 'api-b'], 'path:xqueue: denied (1 live)'],
    ['API deny-new', 'browser', ['browser', 'api-b'], 'default: ends browser'],
    ['dry run', 'api', ['browser', 'api-b'], 'path:xqueue: would end api-b'],
    ['dry run', 'browser', ['browser', 'api-b'], 'default: would end browser'],
  ] as const)(
    '%s: a login (instance a) on %s path beside %j: %s',
    (settings, path, live, expected) => {
      expect(outcome(settings, path, live)).toBe(expected);
    },
  );

  it('an exemption still wins on every path, as upstream', () => {
    expect(outcome('svc exempt', 'api', ['browser', 'api-b'], svc)).toBe('exempt');
    expect(outcome('svc exempt', 'browser', ['browser', 'api-b'], svc)).toBe('exempt');
  });
});

describe('resolveLogin and applyLimit', () => {
  const settings = parseSettings({});
  const user = { username: 'alice', groups: [] };
  const live = [
    { id: 'old', createdAt: 1, instanceId: null },
    { id: 'current', createdAt: 2, instanceId: null },
  ];

  it('never counts the session a login replaces', () => {
    const context = { sessionId: 'new', now: 3, replacing: 'current' };
    expect(decideLogin(settings, user, context, live)).toMatchObject({
      outcome: 'allow',
      evict: [{ id: 'old' }],
    });
    expect(resolveLogin(settings, user, context)).toMatchObject({ ignoring: ['new', 'current'] });
  });

  it('gives the same decision as data and as a function', () => {
    const context = { sessionId: 'new', now: 3 };
    const { limit, decide } = loginAdmission(settings, user, context);
    expect(decide(live)).toEqual(decideLogin(settings, user, context, live));
    expect(applyLimit(limit, live)).toEqual(decide(live));
    const exempt = parseSettings({ exemptUsernames: ['alice'] });
    expect(resolveLogin(exempt, user, context)).toEqual({
      outcome: 'exempt',
      match: { by: 'username', username: 'alice' },
    });
  });
});

import { describe, expect, it } from 'vitest';
import {
  MAX_NAME_LENGTH,
  MAX_NAMES,
  MAX_RULES,
  POLICY_ENV,
  PolicySettingsError,
  parseSettings,
  settingsFromEnv,
} from './settings.ts';

describe('parseSettings', () => {
  it('defaults to upstream: enforcing, single session, nothing exempt', () => {
    expect(parseSettings()).toEqual({
      preventConcurrentLogins: true,
      exemptUsernames: [],
      exemptGroups: [],
      maxSessions: 1,
      onLimit: 'evict-oldest',
      scope: 'account',
      rules: [],
      dryRun: false,
    });
  });

  it('accepts per-account rules by username or group', () => {
    const settings = parseSettings({
      rules: [
        { match: { group: 'xqueue' }, maxSessions: 8, scope: 'instance' },
        { match: { username: 'ops' }, onLimit: 'deny-new' },
      ],
    });
    expect(settings.rules).toHaveLength(2);
  });

  it('names the setting and the value it rejects', () => {
    expect(() => parseSettings({ maxSessions: 0 })).toThrow(/maxSessions.*got 0/);
    expect(() => parseSettings({ onLimit: 'kick' as never })).toThrow(/onLimit.*"kick"/);
    expect(() => parseSettings({ exemptUsernames: [''] })).toThrow(/exemptUsernames at 0/);
  });

  it('rejects unknown settings instead of ignoring a typo', () => {
    expect(() => parseSettings({ exemptUsername: ['x'] } as never)).toThrow(PolicySettingsError);
  });
});

describe('settingsFromEnv', () => {
  it('changes nothing when every variable is unset or empty', () => {
    expect(settingsFromEnv({})).toEqual(parseSettings());
    expect(
      settingsFromEnv({ SINGLE_LOGIN_EXEMPT_USERNAMES: '', SINGLE_LOGIN_EXEMPT_GROUPS: ' ' }),
    ).toEqual(parseSettings());
  });

  it('reads comma-separated lists, trimming blanks and empty items', () => {
    const settings = settingsFromEnv({
      SINGLE_LOGIN_EXEMPT_USERNAMES: 'xqueue_svc, grader2,,',
      SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue',
    });
    expect(settings.exemptUsernames).toEqual(['xqueue_svc', 'grader2']);
    expect(settings.exemptGroups).toEqual(['xqueue']);
  });

  it('reads booleans, numbers and JSON rules', () => {
    const settings = settingsFromEnv({
      PREVENT_CONCURRENT_LOGINS: 'False',
      SINGLE_LOGIN_DRY_RUN: 'yes',
      SINGLE_LOGIN_MAX_SESSIONS: '3',
      SINGLE_LOGIN_ON_LIMIT: 'deny-new',
      SINGLE_LOGIN_SCOPE: 'instance',
      SINGLE_LOGIN_RULES: '[{"match":{"group":"xqueue"},"maxSessions":16}]',
    });
    expect(settings).toMatchObject({
      preventConcurrentLogins: false,
      dryRun: true,
      maxSessions: 3,
      onLimit: 'deny-new',
      scope: 'instance',
      rules: [{ match: { group: 'xqueue' }, maxSessions: 16 }],
    });
  });

  it('names the variable and the bad value', () => {
    expect(() => settingsFromEnv({ PREVENT_CONCURRENT_LOGINS: 'maybe' })).toThrow(
      /PREVENT_CONCURRENT_LOGINS: .*"maybe"/,
    );
    expect(() => settingsFromEnv({ SINGLE_LOGIN_MAX_SESSIONS: 'two' })).toThrow(
      /SINGLE_LOGIN_MAX_SESSIONS: .*"two"/,
    );
    expect(() => settingsFromEnv({ SINGLE_LOGIN_SCOPE: 'global' })).toThrow(
      /SINGLE_LOGIN_SCOPE: .*account.*instance/,
    );
    expect(() => settingsFromEnv({ SINGLE_LOGIN_RULES: '{not json' })).toThrow(
      /SINGLE_LOGIN_RULES: must be a JSON array/,
    );
    expect(() => settingsFromEnv({ SINGLE_LOGIN_RULES: '[{"match":{"team":"x"}}]' })).toThrow(
      /SINGLE_LOGIN_RULES at 0\.match/,
    );
  });
});

/** The message a settings call throws, so a test can compare it whole. */
function thrown(read: () => unknown): string {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(PolicySettingsError);
    return (error as Error).message;
  }
  throw new Error('expected the settings to be rejected');
}

describe('parseSettings: names and messages', () => {
  it('trims names and rejects a blank one by its position', () => {
    expect(parseSettings({ exemptUsernames: [' xqueue_svc '] }).exemptUsernames).toEqual([
      'xqueue_svc',
    ]);
    expect(thrown(() => parseSettings({ exemptGroups: ['staff', ' '] }))).toBe(
      'Invalid session policy settings:\n  - exemptGroups at 1: must not be empty (got " ")',
    );
  });

  it('accepts every documented value of onLimit and scope', () => {
    expect(parseSettings({ onLimit: 'evict-oldest', scope: 'instance' })).toMatchObject({
      onLimit: 'evict-oldest',
      scope: 'instance',
    });
    expect(parseSettings({ onLimit: 'deny-new', scope: 'account' })).toMatchObject({
      onLimit: 'deny-new',
      scope: 'account',
    });
    expect(settingsFromEnv({ SINGLE_LOGIN_ON_LIMIT: 'evict-least-recent' })).toMatchObject({
      onLimit: 'evict-least-recent',
    });
  });

  it('lists every issue, one per line, in a PolicySettingsError', () => {
    let error: unknown;
    try {
      parseSettings({ maxSessions: 0, onLimit: 'kick' as never });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PolicySettingsError);
    expect(error).toMatchObject({
      name: 'PolicySettingsError',
      issues: [
        'maxSessions: Too small: expected number to be >=1 (got 0)',
        'onLimit: Invalid option: expected one of "evict-oldest"|"evict-least-recent"|"deny-new" (got "kick")',
      ],
      message:
        'Invalid session policy settings:\n' +
        '  - maxSessions: Too small: expected number to be >=1 (got 0)\n' +
        '  - onLimit: Invalid option: expected one of "evict-oldest"|"evict-least-recent"|"deny-new" (got "kick")',
    });
  });

  it('labels an issue with the whole settings object as (settings)', () => {
    expect(thrown(() => parseSettings({ exemptUsername: ['x'] } as never))).toBe(
      'Invalid session policy settings:\n' +
        '  - (settings): Unrecognized key: "exemptUsername" (got {"exemptUsername":["x"]})',
    );
  });

  it('shows no value for a setting that is missing', () => {
    expect(thrown(() => parseSettings({ rules: [{ maxSessions: 2 }] } as never))).toBe(
      'Invalid session policy settings:\n' +
        '  - rules at 0.match: Invalid input: expected object, received undefined',
    );
  });
});

describe('settingsFromEnv: reading strings', () => {
  it('reads each documented boolean word, in any case and with blanks around it', () => {
    for (const word of ['1', 'true', 'yes', 'on', ' TRUE ', 'On']) {
      expect(settingsFromEnv({ SINGLE_LOGIN_DRY_RUN: word }).dryRun, word).toBe(true);
    }
    for (const word of ['0', 'false', 'no', 'off', ' FALSE ', 'Off']) {
      expect(
        settingsFromEnv({ PREVENT_CONCURRENT_LOGINS: word }).preventConcurrentLogins,
        word,
      ).toBe(false);
    }
  });

  it('treats a variable holding only blanks as unset', () => {
    const blank = Object.fromEntries(Object.keys(POLICY_ENV).map((variable) => [variable, '  ']));
    expect(settingsFromEnv(blank)).toEqual(parseSettings());
  });

  it('drops list items that are only blanks', () => {
    expect(
      settingsFromEnv({ SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue, ,graders' }).exemptGroups,
    ).toEqual(['xqueue', 'graders']);
  });

  it('reads numbers with several digits and blanks around them', () => {
    expect(settingsFromEnv({ SINGLE_LOGIN_MAX_SESSIONS: ' 3 ' }).maxSessions).toBe(3);
    expect(settingsFromEnv({ SINGLE_LOGIN_MAX_SESSIONS: '12' }).maxSessions).toBe(12);
  });

  it('rejects a number with anything before or after it, showing what was set', () => {
    for (const raw of ['x3', '3x', '1.5']) {
      expect(thrown(() => settingsFromEnv({ SINGLE_LOGIN_MAX_SESSIONS: raw }))).toBe(
        'Invalid session policy settings:\n' +
          `  - SINGLE_LOGIN_MAX_SESSIONS: Invalid input: expected number, received string (got "${raw}")`,
      );
    }
  });

  it('trims the words of onLimit and scope', () => {
    expect(
      settingsFromEnv({ SINGLE_LOGIN_ON_LIMIT: ' deny-new ', SINGLE_LOGIN_SCOPE: ' instance ' }),
    ).toMatchObject({ onLimit: 'deny-new', scope: 'instance' });
  });
});

describe('parseSettings: login-path rules', () => {
  it.each([
    [{ path: 'xqueue' }, { path: 'xqueue' }],
    [{ path: ' xqueue ' }, { path: 'xqueue' }],
    [
      { username: 'xqueue_svc', path: 'xqueue' },
      { username: 'xqueue_svc', path: 'xqueue' },
    ],
    [
      { group: ' graders ', path: 'xqueue' },
      { group: 'graders', path: 'xqueue' },
    ],
  ])('accepts the match %j as %j', (match, parsed) => {
    expect(parseSettings({ rules: [{ match }] }).rules).toEqual([{ match: parsed }]);
  });

  it.each([
    [{ path: '' }, 'rules at 0.match.path: must not be empty (got "")'],
    [{ path: '  ' }, 'rules at 0.match.path: must not be empty (got "  ")'],
    [
      { path: '/xqueue/' },
      'rules at 0.match.path: must be one path segment, without "/", "?" or "#" (got "/xqueue/")',
    ],
    [
      { username: 'svc', path: 'xqueue?x' },
      'rules at 0.match.path: must be one path segment, without "/", "?" or "#" (got "xqueue?x")',
    ],
    [
      { username: 'svc', group: 'graders', path: 'xqueue' },
      'rules at 0.match: may name a username or a group, not both (write two rules) ' +
        '(got {"username":"svc","group":"graders","path":"xqueue"})',
    ],
    [
      {},
      'rules at 0.match: must name a username, a group or a path ' +
        '(or a path with one of the others) (got {})',
    ],
    [{ route: 'xqueue' }, 'rules at 0.match: Unrecognized key: "route" (got {"route":"xqueue"})'],
  ])('rejects the match %j, saying why', (match, issue) => {
    expect(thrown(() => parseSettings({ rules: [{ match } as never] }))).toBe(
      `Invalid session policy settings:\n  - ${issue}`,
    );
  });

  it('reads a path rule from SINGLE_LOGIN_RULES and names the variable when it is bad', () => {
    const rules =
      '[{"match":{"path":"xqueue"},"maxSessions":2},{"match":{"group":"graders","path":"xqueue"}}]';
    expect(settingsFromEnv({ SINGLE_LOGIN_RULES: rules }).rules).toEqual([
      { match: { path: 'xqueue' }, maxSessions: 2 },
      { match: { group: 'graders', path: 'xqueue' } },
    ]);
    expect(
      thrown(() => settingsFromEnv({ SINGLE_LOGIN_RULES: '[{"match":{"path":"a/b"}}]' })),
    ).toBe(
      'Invalid session policy settings:\n' +
        '  - SINGLE_LOGIN_RULES at 0.match.path: must be one path segment, without "/", "?" or "#" (got "a/b")',
    );
  });
});

/** `[[[…]]]` nested `depth` levels, built without recursion. */
function nested(depth: number): unknown {
  let value: unknown = [];
  for (let level = 1; level < depth; level += 1) value = [value];
  return value;
}

describe('parseSettings: size and depth caps', () => {
  it('accepts lists and rules up to the documented caps', () => {
    const names = Array.from({ length: MAX_NAMES }, (_, i) => `u${i}`.padEnd(MAX_NAME_LENGTH, 'x'));
    const rules = Array.from({ length: MAX_RULES }, (_, i) => ({ match: { username: `u${i}` } }));
    const settings = parseSettings({ exemptUsernames: names, exemptGroups: names, rules });
    expect(settings.exemptUsernames).toHaveLength(MAX_NAMES);
    expect(settings.exemptGroups).toHaveLength(MAX_NAMES);
    expect(settings.rules).toHaveLength(MAX_RULES);
  });

  it.each([
    [
      'one rule too many',
      { rules: Array.from({ length: MAX_RULES + 1 }, () => ({ match: { path: 'xqueue' } })) },
      `rules: at most ${MAX_RULES} rules`,
    ],
    [
      'one exempt username too many',
      { exemptUsernames: Array.from({ length: MAX_NAMES + 1 }, (_, i) => `u${i}`) },
      `exemptUsernames: at most ${MAX_NAMES} names`,
    ],
    [
      'one exempt group too many',
      { exemptGroups: Array.from({ length: MAX_NAMES + 1 }, (_, i) => `g${i}`) },
      `exemptGroups: at most ${MAX_NAMES} names`,
    ],
    [
      'a username one character too long',
      { exemptUsernames: ['x'.repeat(MAX_NAME_LENGTH + 1)] },
      `exemptUsernames at 0: at most ${MAX_NAME_LENGTH} characters`,
    ],
    [
      "a rule's group one character too long",
      { rules: [{ match: { group: 'g'.repeat(MAX_NAME_LENGTH + 1) } }] },
      `rules at 0.match.group: at most ${MAX_NAME_LENGTH} characters`,
    ],
    [
      "a rule's path one character too long",
      { rules: [{ match: { path: 'p'.repeat(MAX_NAME_LENGTH + 1) } }] },
      `rules at 0.match.path: at most ${MAX_NAME_LENGTH} characters`,
    ],
  ])('rejects %s, saying the cap', (_, input, issue) => {
    expect(thrown(() => parseSettings(input as never))).toContain(`  - ${issue}`);
  });

  it('rejects a value nested 400,000 levels deep with its own error, not a stack overflow', () => {
    const message = thrown(() => parseSettings({ rules: [nested(400_000)] } as never));
    expect(message).toMatch(/^Invalid session policy settings:\n {2}- rules at 0: /);
    expect(message).toContain('(got [[[[[[[[[…]]]]]]]]])');
    const deep = `[${'['.repeat(400_000)}${']'.repeat(400_000)}]`;
    expect(thrown(() => settingsFromEnv({ SINGLE_LOGIN_RULES: deep }))).toMatch(
      /^Invalid session policy settings:\n {2}- SINGLE_LOGIN_RULES at 0: .*\(got \[\[/,
    );
  });

  it('shows at most 200 characters of a rejected value, and the first 20 issues', () => {
    const huge = 'x'.repeat(1_000_000);
    const one = thrown(() => parseSettings({ onLimit: huge as never }));
    expect(one).toContain(`(got "${'x'.repeat(199)}…)`);
    expect(one.length).toBeLessThan(400);
    const wide = thrown(() =>
      parseSettings({ exemptUsername: Array.from({ length: 100_000 }, (_, i) => i) } as never),
    );
    expect(wide).toMatch(/\(got \{"exemptUsername":\[0,1,2,3,[\d,]+…\)$/);
    expect(wide.length).toBeLessThan(400);
    const many = thrown(() =>
      parseSettings({ exemptUsernames: Array.from({ length: 30 }, () => '') }),
    );
    expect(many.split('\n')).toHaveLength(1 + 20 + 1);
    expect(many).toMatch(/exemptUsernames at 19: must not be empty \(got ""\)\n {2}- and 10 more$/);
  });
});

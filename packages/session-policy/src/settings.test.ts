import { describe, expect, it } from 'vitest';
import { PolicySettingsError, parseSettings, settingsFromEnv } from './settings.ts';

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

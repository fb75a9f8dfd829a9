import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from './env.ts';

describe('parseEnv', () => {
  it('fills in the documented defaults', () => {
    const config = parseEnv({}, '/srv/lms');
    expect(config).toMatchObject({
      port: 8000,
      host: '127.0.0.1',
      databasePath: '/srv/lms/data/lms.db',
      passwordHashIterations: 1_000_000,
      logLevel: 'info',
      xqueueLockSeconds: 300,
      sessionTtlSeconds: 1_209_600,
      stormAlertEvictionsPerMinute: 30,
      maxBodyBytes: 1_048_576,
      loginThrottleFailures: 10,
      loginThrottleWindowSeconds: 300,
      trustProxy: [],
      policy: { preventConcurrentLogins: true, exemptUsernames: [], exemptGroups: [] },
    });
  });

  it('resolves a relative DATABASE_PATH against INIT_CWD, where the user ran pnpm', () => {
    expect(
      parseEnv({ INIT_CWD: '/home/me', DATABASE_PATH: 'x.db' }, '/repo/apps/lms').databasePath,
    ).toBe('/home/me/x.db');
    expect(parseEnv({ DATABASE_PATH: '/abs/x.db' }, '/repo').databasePath).toBe('/abs/x.db');
    expect(parseEnv({ DATABASE_PATH: ':memory:' }, '/repo').databasePath).toBe(':memory:');
  });

  it('reads the policy and fractional lock seconds', () => {
    const config = parseEnv(
      {
        PORT: '0',
        XQUEUE_LOCK_SECONDS: '0.5',
        PREVENT_CONCURRENT_LOGINS: 'false',
        SINGLE_LOGIN_EXEMPT_USERNAMES: 'xqueue_svc, grader',
        SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue',
      },
      '/',
    );
    expect(config.port).toBe(0);
    expect(config.xqueueLockSeconds).toBe(0.5);
    expect(config.policy).toMatchObject({
      preventConcurrentLogins: false,
      exemptUsernames: ['xqueue_svc', 'grader'],
      exemptGroups: ['xqueue'],
    });
  });

  it('reads the login throttle and TRUST_PROXY', () => {
    const config = parseEnv(
      {
        LOGIN_THROTTLE_FAILURES: '0',
        LOGIN_THROTTLE_WINDOW_SECONDS: '60',
        TRUST_PROXY: ' loopback, 10.0.0.0/8,192.0.2.1 ,fd00::/8',
      },
      '/',
    );
    expect(config).toMatchObject({
      loginThrottleFailures: 0,
      loginThrottleWindowSeconds: 60,
      trustProxy: ['loopback', '10.0.0.0/8', '192.0.2.1', 'fd00::/8'],
    });
    expect(parseEnv({ TRUST_PROXY: 'false' }, '/').trustProxy).toEqual([]);
  });

  it.each(['true', 'TRUE', '1'])(
    'refuses TRUST_PROXY=%s, which would believe any client, and says what to write',
    (value) => {
      expect(() => parseEnv({ TRUST_PROXY: value }, '/')).toThrow(EnvError);
      expect(() => parseEnv({ TRUST_PROXY: value }, '/')).toThrow(
        `TRUST_PROXY=${value} would believe X-Forwarded-For from any client: name the proxies instead, e.g. TRUST_PROXY=loopback`,
      );
    },
  );

  it('reads METRICS_TOKEN; unset or empty leaves /metrics open', () => {
    expect(parseEnv({}, '/').metricsToken).toBeNull();
    expect(parseEnv({ METRICS_TOKEN: '  ' }, '/').metricsToken).toBeNull();
    expect(parseEnv({ METRICS_TOKEN: 'abcdefghijklmnop' }, '/').metricsToken).toBe(
      'abcdefghijklmnop',
    );
  });

  it.each([
    ['too short', 'fifteen-chars-x'],
    ['not a bearer token', 'sixteen chars or more'],
  ])('refuses a METRICS_TOKEN that is %s, naming it without echoing it', (_, token) => {
    const error = (() => {
      try {
        parseEnv({ METRICS_TOKEN: token }, '/');
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(error).toBeInstanceOf(EnvError);
    expect((error as Error).message).toMatch(
      /^METRICS_TOKEN \(\d+ characters\) is invalid: expected empty \(open\) or 16\.\.512 characters/,
    );
    expect((error as Error).message).not.toContain(token);
  });

  it('reads SINGLE_LOGIN_ENFORCEMENT, atomic unless set; upstream takes no rule beyond upstream', () => {
    expect(parseEnv({}, '/').enforcement).toBe('atomic');
    expect(parseEnv({ SINGLE_LOGIN_ENFORCEMENT: 'upstream' }, '/').enforcement).toBe('upstream');
    expect(
      parseEnv({ SINGLE_LOGIN_ENFORCEMENT: 'upstream', SINGLE_LOGIN_EXEMPT_GROUPS: 'xqueue' }, '/')
        .policy.exemptGroups,
    ).toEqual(['xqueue']);
    expect(() =>
      parseEnv(
        {
          SINGLE_LOGIN_ENFORCEMENT: 'upstream',
          SINGLE_LOGIN_MAX_SESSIONS: '2',
          SINGLE_LOGIN_DRY_RUN: 'true',
        },
        '/',
      ),
    ).toThrow(
      /upstream runs edx-platform's single slot only: unset SINGLE_LOGIN_MAX_SESSIONS, SINGLE_LOGIN_DRY_RUN/,
    );
    expect(() => parseEnv({ SINGLE_LOGIN_ENFORCEMENT: 'django' }, '/')).toThrow(
      /SINGLE_LOGIN_ENFORCEMENT="django" is invalid: expected atomic \(one transaction\) or upstream/,
    );
  });

  it('reads SESSION_STORE: sqlite unless set; redis from SESSION_REDIS_URL, else REDIS_URL', () => {
    expect(parseEnv({}, '/').sessionStore).toEqual({ kind: 'sqlite' });
    expect(parseEnv({ SESSION_STORE: 'redis' }, '/').sessionStore).toEqual({
      kind: 'redis',
      url: 'redis://127.0.0.1:6379',
      prefix: 'lms:',
    });
    expect(
      parseEnv({ SESSION_STORE: 'redis', REDIS_URL: 'redis://cache:6379/2' }, '/').sessionStore,
    ).toMatchObject({ url: 'redis://cache:6379/2' });
    expect(
      parseEnv(
        {
          SESSION_STORE: 'redis',
          REDIS_URL: 'redis://cache:6379/2',
          SESSION_REDIS_URL: 'rediss://sessions:6380',
          SESSION_REDIS_PREFIX: 'edx:lms:',
        },
        '/',
      ).sessionStore,
    ).toEqual({ kind: 'redis', url: 'rediss://sessions:6380', prefix: 'edx:lms:' });
    expect(() => parseEnv({ SESSION_STORE: 'memcached' }, '/')).toThrow(
      /SESSION_STORE="memcached" is invalid: expected sqlite .* or redis/,
    );
    expect(() =>
      parseEnv({ SESSION_STORE: 'redis', SESSION_REDIS_URL: 'cache:6379' }, '/'),
    ).toThrow(
      /SESSION_REDIS_URL="cache:6379" is invalid: expected a redis:\/\/ or rediss:\/\/ URL/,
    );
    expect(() => parseEnv({ SESSION_STORE: 'redis', SESSION_REDIS_PREFIX: '{lms}' }, '/')).toThrow(
      /SESSION_REDIS_PREFIX="\{lms\}" is invalid/,
    );
    expect(
      parseEnv({ SESSION_STORE: 'redis', SINGLE_LOGIN_ENFORCEMENT: 'upstream' }, '/').enforcement,
    ).toBe('upstream');
  });

  it('reads LMS_WORKERS, 1 unless set; more than one needs SESSION_STORE=redis', () => {
    expect(parseEnv({}, '/').workers).toBe(1);
    expect(parseEnv({ LMS_WORKERS: '4', SESSION_STORE: 'redis' }, '/').workers).toBe(4);
    expect(() => parseEnv({ LMS_WORKERS: '2' }, '/')).toThrow(
      /LMS_WORKERS=2 runs 2 processes that share their sessions through Redis: set SESSION_STORE=redis/,
    );
    expect(() => parseEnv({ LMS_WORKERS: '0', SESSION_STORE: 'redis' }, '/')).toThrow(
      /LMS_WORKERS="0" is invalid: expected an integer 1\.\.64/,
    );
  });

  it('reads SQLITE_SYNCHRONOUS, full unless set', () => {
    expect(parseEnv({}, '/').sqliteSynchronous).toBe('full');
    expect(parseEnv({ SQLITE_SYNCHRONOUS: 'normal' }, '/').sqliteSynchronous).toBe('normal');
    expect(parseEnv({ SQLITE_SYNCHRONOUS: ' full ' }, '/').sqliteSynchronous).toBe('full');
  });

  it.each([
    [
      { TRUST_PROXY: 'loopback,proxy.local' },
      /TRUST_PROXY="loopback,proxy.local" is invalid: expected the reverse proxies in front of the LMS, comma-separated: addresses or CIDR ranges/,
    ],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /TRUST_PROXY="10.0.0.0\/33" is invalid/],
    [{ LOGIN_THROTTLE_FAILURES: '-1' }, /LOGIN_THROTTLE_FAILURES="-1" is invalid/],
    [{ PORT: '70000' }, /PORT="70000" is invalid: expected an integer 0\.\.65535/],
    [
      { LOG_LEVEL: 'loud' },
      /LOG_LEVEL="loud" is invalid: expected fatal, error, warn, info, debug, trace, silent/,
    ],
    [{ XQUEUE_LOCK_SECONDS: '0' }, /XQUEUE_LOCK_SECONDS="0" is invalid: expected seconds > 0/],
    [
      { PASSWORD_HASH_ITERATIONS: 'many' },
      /PASSWORD_HASH_ITERATIONS="many" is invalid: expected an integer/,
    ],
    [{ PREVENT_CONCURRENT_LOGINS: 'maybe' }, /PREVENT_CONCURRENT_LOGINS/],
    [{ SQLITE_SYNCHRONOUS: 'off' }, /SQLITE_SYNCHRONOUS="off" is invalid: expected normal or full/],
  ])('names the variable and the accepted values for %o', (source, message) => {
    expect(() => parseEnv(source, '/')).toThrow(EnvError);
    expect(() => parseEnv(source, '/')).toThrow(message);
  });
});

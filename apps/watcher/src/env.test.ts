import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from './env.ts';

describe('parseEnv', () => {
  it('applies the documented defaults to an empty environment', () => {
    const env = parseEnv({});
    expect(env).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      WATCHER_MODE: 'current',
      WATCHER_PYTHON_HANDLER: 'exact-answer',
      WATCHER_SEND_INSTANCE_ID: false,
      WATCHER_CONCURRENCY: 4,
      WATCHER_METRICS_PORT: 9100,
      WATCHER_METRICS_HOST: '127.0.0.1',
      WATCHER_QUEUE_PREFIX: 'storm',
      WATCHER_JOB_LOCK_MS: 30_000,
      XQWATCHER_VERIFY_TLS: true,
      LOG_LEVEL: 'info',
    });
    expect(env.WATCHER_CONNECTIONS).toBeUndefined();
    expect(env.XQWATCHER_POLL_INTERVAL).toBeUndefined();
    expect(env.XQWATCHER_FOLLOW_CLIENT_REDIRECTS).toBeUndefined();
    expect(env.XQWATCHER_HTTP_BASIC_AUTH).toBeUndefined();
  });

  it('parses queue lists, flags, modes and fractional seconds', () => {
    const env = parseEnv({
      WATCHER_QUEUES: 'a, b,a',
      WATCHER_SEND_INSTANCE_ID: 'true',
      XQWATCHER_POLL_INTERVAL: '0.05',
      WATCHER_CONNECTIONS: '3',
      WATCHER_METRICS_PORT: '0',
      WATCHER_MODE: 'hardened',
      WATCHER_PYTHON_HANDLER: 'test-report',
    });
    expect(env.WATCHER_QUEUES).toEqual(['a', 'b']);
    expect(env.WATCHER_SEND_INSTANCE_ID).toBe(true);
    expect(env.XQWATCHER_POLL_INTERVAL).toBe(0.05);
    expect(env.WATCHER_CONNECTIONS).toBe(3);
    expect(env.WATCHER_METRICS_PORT).toBe(0);
    expect(env.WATCHER_MODE).toBe('hardened');
    expect(env.WATCHER_PYTHON_HANDLER).toBe('test-report');
  });

  // as xqueue-watcher's env_settings.get_manager_config_from_env, with fractions allowed
  it('reads the XQWATCHER_* manager variables', () => {
    const env = parseEnv({
      XQWATCHER_HTTP_BASIC_AUTH: 'proxy:pa:ss',
      XQWATCHER_POLL_TIME: '2.5',
      XQWATCHER_REQUESTS_TIMEOUT: '3',
      XQWATCHER_LOGIN_POLL_INTERVAL: '0.2',
      XQWATCHER_FOLLOW_CLIENT_REDIRECTS: '1',
      XQWATCHER_VERIFY_TLS: 'no',
    });
    expect(env).toMatchObject({
      XQWATCHER_HTTP_BASIC_AUTH: { username: 'proxy', password: 'pa:ss' },
      XQWATCHER_POLL_TIME: 2.5,
      XQWATCHER_REQUESTS_TIMEOUT: 3,
      XQWATCHER_LOGIN_POLL_INTERVAL: 0.2,
      XQWATCHER_FOLLOW_CLIENT_REDIRECTS: true,
      XQWATCHER_VERIFY_TLS: false,
    });
  });

  it('parses every boolean one way, in any case, and names a bad one', () => {
    for (const [text, value] of [
      ['TRUE', true],
      ['Yes', true],
      ['0', false],
      ['False', false],
    ] as const) {
      expect(parseEnv({ XQWATCHER_VERIFY_TLS: text }).XQWATCHER_VERIFY_TLS).toBe(value);
      expect(parseEnv({ WATCHER_SEND_INSTANCE_ID: text }).WATCHER_SEND_INSTANCE_ID).toBe(value);
    }
    expect(() => parseEnv({ XQWATCHER_FOLLOW_CLIENT_REDIRECTS: 'on' })).toThrow(
      /XQWATCHER_FOLLOW_CLIENT_REDIRECTS="on": expected one of true, false, 1, 0, yes, no/,
    );
  });

  // as xqueue-watcher's env_settings.configure_logging, mapped onto pino's levels
  it('maps XQWATCHER_LOG_LEVEL to LOG_LEVEL unless LOG_LEVEL is set', () => {
    expect(parseEnv({ XQWATCHER_LOG_LEVEL: 'WARNING' }).LOG_LEVEL).toBe('warn');
    expect(parseEnv({ XQWATCHER_LOG_LEVEL: 'critical' }).LOG_LEVEL).toBe('fatal');
    expect(parseEnv({ XQWATCHER_LOG_LEVEL: 'DEBUG', LOG_LEVEL: 'error' }).LOG_LEVEL).toBe('error');
    expect(() => parseEnv({ XQWATCHER_LOG_LEVEL: 'verbose' })).toThrow(
      /XQWATCHER_LOG_LEVEL="verbose": expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL/,
    );
  });

  it('refuses the replaced variables, naming what to use instead', () => {
    const old = () =>
      parseEnv({
        WATCHER_RELOGIN: 'unbounded',
        WATCHER_POLL_INTERVAL: '0.05',
        WATCHER_LOGIN_POLL_INTERVAL: '0.2',
        WATCHER_REQUESTS_TIMEOUT: '5',
      });
    expect(old).toThrow(
      /WATCHER_RELOGIN="unbounded": .*use WATCHER_MODE \(current\|legacy\|hardened\)/,
    );
    expect(old).toThrow(/WATCHER_POLL_INTERVAL="0.05": .*use XQWATCHER_POLL_INTERVAL/);
    expect(old).toThrow(/WATCHER_LOGIN_POLL_INTERVAL="0.2": .*use XQWATCHER_LOGIN_POLL_INTERVAL/);
    expect(old).toThrow(/WATCHER_REQUESTS_TIMEOUT="5": .*use XQWATCHER_REQUESTS_TIMEOUT/);
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv({ WATCHER_CONNECTIONS: '', LMS_URL: '' }).LMS_URL).toBeUndefined();
    expect(parseEnv({ WATCHER_RELOGIN: '' }).WATCHER_MODE).toBe('current');
  });

  it('names every bad variable with its value and the accepted values, hiding secrets', () => {
    const bad = () =>
      parseEnv({
        WATCHER_MODE: 'sometimes',
        WATCHER_CONNECTIONS: '0',
        REDIS_URL: 'nope',
        WATCHER_PYTHON_HANDLER: 'ContainerGrader',
        XQWATCHER_HTTP_BASIC_AUTH: 'no-colon-secret',
      });
    expect(bad).toThrow(EnvError);
    expect(bad).toThrow(/WATCHER_MODE="sometimes": expected one of current, legacy, hardened/);
    expect(bad).toThrow(/WATCHER_CONNECTIONS="0": expected an integer from 1 to 100/);
    expect(bad).toThrow(/REDIS_URL="nope": expected a URL/);
    expect(bad).toThrow(
      /WATCHER_PYTHON_HANDLER="ContainerGrader": expected one of exact-answer, slow-flaky, test-report/,
    );
    expect(bad).toThrow(/XQWATCHER_HTTP_BASIC_AUTH=\(hidden\): expected username:password/);
    expect(bad).not.toThrow(/no-colon-secret/);
  });
});

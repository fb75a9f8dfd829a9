import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from './env.ts';

describe('parseEnv', () => {
  it('applies the documented defaults to an empty environment', () => {
    const env = parseEnv({});
    expect(env).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      WATCHER_RELOGIN: 'once-per-request',
      WATCHER_SEND_INSTANCE_ID: false,
      WATCHER_CONCURRENCY: 4,
      WATCHER_METRICS_PORT: 9100,
      WATCHER_METRICS_HOST: '127.0.0.1',
      WATCHER_QUEUE_PREFIX: 'storm',
      WATCHER_JOB_LOCK_MS: 30_000,
      LOG_LEVEL: 'info',
    });
    expect(env.WATCHER_CONNECTIONS).toBeUndefined();
    expect(env.WATCHER_POLL_INTERVAL).toBeUndefined();
  });

  it('parses queue lists, flags and fractional seconds', () => {
    const env = parseEnv({
      WATCHER_QUEUES: 'a, b,a',
      WATCHER_SEND_INSTANCE_ID: 'true',
      WATCHER_POLL_INTERVAL: '0.05',
      WATCHER_CONNECTIONS: '3',
      WATCHER_METRICS_PORT: '0',
      WATCHER_RELOGIN: 'unbounded',
    });
    expect(env.WATCHER_QUEUES).toEqual(['a', 'b']);
    expect(env.WATCHER_SEND_INSTANCE_ID).toBe(true);
    expect(env.WATCHER_POLL_INTERVAL).toBe(0.05);
    expect(env.WATCHER_CONNECTIONS).toBe(3);
    expect(env.WATCHER_METRICS_PORT).toBe(0);
    expect(env.WATCHER_RELOGIN).toBe('unbounded');
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv({ WATCHER_CONNECTIONS: '', LMS_URL: '' }).LMS_URL).toBeUndefined();
  });

  it('names every bad variable with its value and the accepted values', () => {
    const bad = () =>
      parseEnv({ WATCHER_RELOGIN: 'sometimes', WATCHER_CONNECTIONS: '0', REDIS_URL: 'nope' });
    expect(bad).toThrow(EnvError);
    expect(bad).toThrow(/WATCHER_RELOGIN="sometimes": expected one of once-per-request, unbounded/);
    expect(bad).toThrow(/WATCHER_CONNECTIONS="0": expected an integer from 1 to 100/);
    expect(bad).toThrow(/REDIS_URL="nope": expected a URL/);
  });
});

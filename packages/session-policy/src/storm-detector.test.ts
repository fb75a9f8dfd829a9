import { describe, expect, it } from 'vitest';
import { createStormDetector } from './storm-detector.ts';

const T0 = 1_700_000_000_000;

describe('createStormDetector', () => {
  it('raises one alert naming the account, its rates and the exemption to set', () => {
    const detector = createStormDetector({ evictionsPerMinuteThreshold: 10 });
    const alerts = [];
    for (let second = 0; second < 12; second++) {
      detector.recordLogin('xqueue_svc', T0 + second * 1000);
      const alert = detector.recordEviction('xqueue_svc', T0 + second * 1000);
      if (alert) alerts.push(alert);
    }
    expect(alerts).toEqual([
      {
        type: 'storm',
        account: 'xqueue_svc',
        at: T0 + 9000,
        loginsPerMinute: 10,
        evictionsPerMinute: 10,
        thresholdPerMinute: 10,
        suggestion: 'SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc',
      },
    ]);
  });

  it('stays quiet below the threshold', () => {
    const detector = createStormDetector({ evictionsPerMinuteThreshold: 10 });
    for (let minute = 0; minute < 5; minute++) {
      for (let index = 0; index < 9; index++) {
        expect(detector.recordEviction('alice', T0 + minute * 60_000 + index * 6000)).toBeNull();
      }
    }
  });

  it('forgets events older than the window', () => {
    const detector = createStormDetector({ windowMs: 10_000, evictionsPerMinuteThreshold: 1000 });
    detector.recordEviction('svc', T0, 5);
    expect(detector.rates(T0 + 5000)).toEqual([
      { account: 'svc', loginsPerMinute: 0, evictionsPerMinute: 30, storming: false },
    ]);
    expect(detector.rates(T0 + 10_001)).toEqual([]);
  });

  it('alerts again after the cooldown while the storm goes on', () => {
    const detector = createStormDetector({
      windowMs: 10_000,
      evictionsPerMinuteThreshold: 6,
      cooldownMs: 20_000,
    });
    const at: number[] = [];
    for (let second = 0; second < 45; second++) {
      const alert = detector.recordEviction('svc', T0 + second * 1000);
      if (alert) at.push(alert.at - T0);
    }
    expect(at).toEqual([0, 20_000, 40_000]);
  });

  it('uses the suggestion it is given', () => {
    const detector = createStormDetector({
      evictionsPerMinuteThreshold: 1,
      suggest: () => 'SINGLE_LOGIN_EXEMPT_GROUPS=xqueue',
    });
    expect(detector.recordEviction('svc', T0)?.suggestion).toBe(
      'SINGLE_LOGIN_EXEMPT_GROUPS=xqueue',
    );
  });

  it('rejects a threshold that could never be met', () => {
    expect(() => createStormDetector({ evictionsPerMinuteThreshold: 0 })).toThrow(RangeError);
  });
});

describe('createStormDetector: options', () => {
  it('rejects an empty window and a negative cooldown, saying what is allowed', () => {
    const allowed = 'windowMs and evictionsPerMinuteThreshold must be > 0, cooldownMs >= 0';
    expect(() => createStormDetector({ windowMs: 0 })).toThrow(new RangeError(allowed));
    expect(() => createStormDetector({ evictionsPerMinuteThreshold: -1 })).toThrow(allowed);
    expect(() => createStormDetector({ cooldownMs: -1 })).toThrow(allowed);
    expect(() => createStormDetector({ windowMs: Number.NaN })).toThrow(allowed);
  });

  it('with no cooldown alerts on every event while the storm lasts', () => {
    const detector = createStormDetector({ evictionsPerMinuteThreshold: 2, cooldownMs: 0 });
    const alerted = [0, 1, 2, 3].map((second) =>
      detector.recordEviction('svc', T0 + second * 1000),
    );
    expect(alerted.map((alert) => alert?.at ?? null)).toEqual([
      null,
      T0 + 1000,
      T0 + 2000,
      T0 + 3000,
    ]);
  });

  it('raises the first alert even when the clock starts at zero', () => {
    const detector = createStormDetector({ evictionsPerMinuteThreshold: 1 });
    expect(detector.recordEviction('svc', 0)).toMatchObject({ type: 'storm', at: 0 });
    expect(detector.recordEviction('svc', 1)).toBeNull();
  });
});

describe('createStormDetector: rates', () => {
  it('normalises logins and evictions in a short window to per minute', () => {
    const detector = createStormDetector({ windowMs: 10_000, evictionsPerMinuteThreshold: 1000 });
    detector.recordLogin('svc', T0);
    detector.recordLogin('svc', T0 + 1000);
    detector.recordEviction('svc', T0 + 1000);
    expect(detector.rates(T0 + 2000)).toEqual([
      { account: 'svc', loginsPerMinute: 12, evictionsPerMinute: 6, storming: false },
    ]);
  });

  it('lists an account that only logs in', () => {
    const detector = createStormDetector();
    detector.recordLogin('alice', T0);
    expect(detector.rates(T0 + 1)).toEqual([
      { account: 'alice', loginsPerMinute: 1, evictionsPerMinute: 0, storming: false },
    ]);
  });

  it('lists the accounts with the most evictions first', () => {
    const detector = createStormDetector({ evictionsPerMinuteThreshold: 1000 });
    detector.recordEviction('few', T0, 1);
    detector.recordEviction('most', T0, 3);
    detector.recordLogin('none', T0);
    detector.recordEviction('some', T0, 2);
    const order = detector.rates(T0 + 1).map((rates) => rates.account);
    expect(order).toEqual(['most', 'some', 'few', 'none']);
  });

  it('keeps counting right over long runs of expired events', () => {
    const detector = createStormDetector({ windowMs: 1000, evictionsPerMinuteThreshold: 1e9 });
    for (let ms = 0; ms < 5000; ms++) detector.recordEviction('svc', T0 + ms);
    // the window (T0 + 3999, T0 + 4999] holds the last 1000 events
    expect(detector.rates(T0 + 4999)).toMatchObject([{ evictionsPerMinute: 1000 * 60 }]);
    expect(detector.rates(T0 + 5998)).toMatchObject([{ evictionsPerMinute: 60 }]);
    expect(detector.rates(T0 + 5999)).toEqual([]);
  });
});

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

import { suggestExemption } from './decide.ts';

/** Raised when an account's evictions in the window reach the threshold. */
export interface StormAlert {
  type: 'storm';
  account: string;
  /** Milliseconds since the epoch. */
  at: number;
  loginsPerMinute: number;
  evictionsPerMinute: number;
  /** Evictions per minute that raise an alert. */
  thresholdPerMinute: number;
  /** A setting that would end the storm, e.g. `SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc`. */
  suggestion: string;
}

/** Current rates of one account. */
export interface AccountRates {
  account: string;
  loginsPerMinute: number;
  evictionsPerMinute: number;
  storming: boolean;
}

export interface StormDetectorOptions {
  /** Sliding window length; rates are normalised to per minute. Default 60 s. */
  windowMs?: number;
  /** Evictions per minute of one account that raise an alert. Default 30. */
  evictionsPerMinuteThreshold?: number;
  /** At most one alert per account per cooldown. Default: the window length. */
  cooldownMs?: number;
  /** The fix to suggest for an account. Default: exempt it by username. */
  suggest?: (account: string) => string;
}

export interface StormDetector {
  recordLogin(account: string, at: number): StormAlert | null;
  recordEviction(account: string, at: number, count?: number): StormAlert | null;
  rates(at: number): AccountRates[];
}

class Window {
  private readonly times: number[] = [];
  private head = 0;

  add(at: number, count: number) {
    for (let index = 0; index < count; index++) this.times.push(at);
  }

  count(at: number, windowMs: number): number {
    const since = at - windowMs;
    while (this.head < this.times.length && (this.times[this.head] ?? 0) <= since) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head); // compact now and then so memory stays bounded
      this.head = 0;
    }
    return this.times.length - this.head;
  }
}

interface AccountState {
  logins: Window;
  evictions: Window;
  lastAlertAt: number | null;
}

/**
 * Counts logins and evictions per account over a sliding window and raises a {@link StormAlert}
 * when evictions per minute reach the threshold. Time is passed in, so tests need no clock.
 *
 * @example
 * const detector = createStormDetector({ evictionsPerMinuteThreshold: 10 });
 * const alert = detector.recordEviction('xqueue_svc', Date.now());
 * if (alert) log.warn(alert, `login storm: ${alert.suggestion}`);
 */
export function createStormDetector(options: StormDetectorOptions = {}): StormDetector {
  const windowMs = options.windowMs ?? 60_000;
  const threshold = options.evictionsPerMinuteThreshold ?? 30;
  const cooldownMs = options.cooldownMs ?? windowMs;
  const suggest = options.suggest ?? suggestExemption;
  if (!(windowMs > 0) || !(threshold > 0) || !(cooldownMs >= 0)) {
    throw new RangeError('windowMs and evictionsPerMinuteThreshold must be > 0, cooldownMs >= 0');
  }
  const perMinute = 60_000 / windowMs;
  const accounts = new Map<string, AccountState>();

  function state(account: string): AccountState {
    let found = accounts.get(account);
    if (!found) {
      found = { logins: new Window(), evictions: new Window(), lastAlertAt: null };
      accounts.set(account, found);
    }
    return found;
  }

  function ratesOf(account: string, entry: AccountState, at: number): AccountRates {
    const evictionsPerMinute = entry.evictions.count(at, windowMs) * perMinute;
    return {
      account,
      loginsPerMinute: entry.logins.count(at, windowMs) * perMinute,
      evictionsPerMinute,
      storming: evictionsPerMinute >= threshold,
    };
  }

  function check(account: string, entry: AccountState, at: number): StormAlert | null {
    const rates = ratesOf(account, entry, at);
    if (!rates.storming) return null;
    if (entry.lastAlertAt !== null && at - entry.lastAlertAt < cooldownMs) return null;
    entry.lastAlertAt = at;
    return {
      type: 'storm',
      account,
      at,
      loginsPerMinute: rates.loginsPerMinute,
      evictionsPerMinute: rates.evictionsPerMinute,
      thresholdPerMinute: threshold,
      suggestion: suggest(account),
    };
  }

  return {
    recordLogin(account, at) {
      const entry = state(account);
      entry.logins.add(at, 1);
      return check(account, entry, at);
    },
    recordEviction(account, at, count = 1) {
      const entry = state(account);
      entry.evictions.add(at, count);
      return check(account, entry, at);
    },
    rates(at) {
      const result: AccountRates[] = [];
      for (const [account, entry] of accounts) {
        const rates = ratesOf(account, entry, at);
        if (rates.loginsPerMinute === 0 && rates.evictionsPerMinute === 0) accounts.delete(account);
        else result.push(rates);
      }
      return result.sort((a, b) => b.evictionsPerMinute - a.evictionsPerMinute);
    },
  };
}

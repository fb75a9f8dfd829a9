import { createHash } from 'node:crypto';

/** Defaults of `LOGIN_THROTTLE_FAILURES` and `LOGIN_THROTTLE_WINDOW_SECONDS`. */
export const DEFAULT_THROTTLE_FAILURES = 10;
export const DEFAULT_THROTTLE_WINDOW_SECONDS = 300;
/** How long a successful login lets its address past a per-account block. */
export const TRUST_MS = 24 * 60 * 60 * 1000;
// Hashed keys have a fixed size, so a flood of made-up usernames costs bounded memory.
const DEFAULT_MAX_KEYS = 100_000;

/** Who is trying: the submitted username (known or not) and the client's address. */
export interface ThrottleKey {
  account: string;
  address: string;
}

/** Whether an attempt may check a password now; when not, how long to wait and which key. */
export type ThrottleVerdict =
  | { allowed: true }
  | { allowed: false; retryAfterSeconds: number; by: 'account' | 'address' };

export interface LoginThrottleOptions {
  /** Failed attempts per key within the window that throttle the key; 0 turns throttling off. */
  maxFailures: number;
  windowMs: number;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Keys remembered at most; the least recently failed are forgotten first. */
  maxKeys?: number;
}

/** The login throttle {@link createLoginThrottle} returns. */
export interface LoginThrottle {
  check(key: ThrottleKey): ThrottleVerdict;
  /** A wrong password, unknown or inactive account: counts against the account and the address. */
  recordFailure(key: ThrottleKey): void;
  /** A correct password: never counts, and lets this address past the account's block. */
  recordSuccess(key: ThrottleKey): void;
}

function digest(kind: string, ...parts: string[]): string {
  return createHash('sha256')
    .update(`${kind}\n${parts.join('\n')}`)
    .digest('base64url');
}

/** A map that forgets its oldest entries beyond `maxKeys` (re-setting a key makes it newest). */
function boundedMap<V>(maxKeys: number) {
  const map = new Map<string, V>();
  return {
    get: (key: string) => map.get(key),
    set(key: string, value: V) {
      map.delete(key);
      map.set(key, value);
      while (map.size > maxKeys) {
        const oldest = map.keys().next().value;
        if (oldest === undefined) break;
        map.delete(oldest);
      }
    },
  };
}

/**
 * A login throttle over failed attempts only, per account and per client address, in a sliding
 * window. Once a key has `maxFailures` failures within `windowMs`, attempts on it are refused
 * (without checking the password) until the oldest of those failures leaves the window.
 *
 * It slows guessing without turning a login storm into a lockout: successful logins never
 * count, so a storm of correct logins is never throttled; refused attempts do not count either,
 * so a block ends by itself; and an address that logged in to the account successfully in the
 * last {@link TRUST_MS} is not held by that account's block (only by its own address's).
 *
 * @example
 * const throttle = createLoginThrottle({ maxFailures: 10, windowMs: 300_000, now: Date.now });
 * const verdict = throttle.check({ account: 'alice', address: '10.0.0.7' });
 * if (!verdict.allowed) return c.json({ detail: 'Too many failed logins' }, 429);
 */
export function createLoginThrottle(options: LoginThrottleOptions): LoginThrottle {
  const { maxFailures, windowMs, now } = options;
  const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  // Per key, the times of at most the last `maxFailures` failures, oldest first.
  const failures = boundedMap<number[]>(maxKeys);
  const trusted = boundedMap<number>(maxKeys);

  function recent(key: string, at: number): number[] {
    return (failures.get(key) ?? []).filter((time) => time > at - windowMs);
  }

  function waitMs(key: string, at: number): number {
    const times = recent(key, at);
    if (times.length < maxFailures) return 0;
    return (times[times.length - maxFailures] ?? at) + windowMs - at;
  }

  function blocked(by: 'account' | 'address', wait: number): ThrottleVerdict {
    return { allowed: false, by, retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) };
  }

  return {
    check({ account, address }) {
      if (maxFailures <= 0) return { allowed: true };
      const at = now();
      const addressWait = waitMs(digest('address', address), at);
      if (addressWait > 0) return blocked('address', addressWait);
      const accountWait = waitMs(digest('account', account), at);
      const trustedAt = trusted.get(digest('pair', account, address));
      const isTrusted = trustedAt !== undefined && trustedAt > at - TRUST_MS;
      if (accountWait > 0 && !isTrusted) return blocked('account', accountWait);
      return { allowed: true };
    },
    recordFailure({ account, address }) {
      if (maxFailures <= 0) return;
      const at = now();
      for (const key of [digest('account', account), digest('address', address)]) {
        failures.set(key, [...recent(key, at), at].slice(-maxFailures));
      }
    },
    recordSuccess({ account, address }) {
      if (maxFailures <= 0) return;
      trusted.set(digest('pair', account, address), now());
    },
  };
}

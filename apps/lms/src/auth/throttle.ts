import crypto, { createHash, randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { DatabaseBusyError, whenNotBusy } from '../db/busy-retry.ts';

/** Defaults of `LOGIN_THROTTLE_FAILURES` and `LOGIN_THROTTLE_WINDOW_SECONDS`. */
export const DEFAULT_THROTTLE_FAILURES = 10;
export const DEFAULT_THROTTLE_WINDOW_SECONDS = 300;
/** How long a successful login lets its address past the account's limits. */
export const TRUST_MS = 24 * 60 * 60 * 1000;
/**
 * Once an account has `maxFailures` failures in the window, an untrusted address may check a
 * password on it once per delay: 1 s, doubling with each further failure, at most 30 s. Failures
 * from one place never lock the right password out of another for longer than that.
 */
export const ACCOUNT_DELAY_BASE_MS = 1_000;
export const ACCOUNT_DELAY_MAX_MS = 30_000;
/** A check still pending after this long belongs to a process that died; it stops counting. */
const PENDING_TTL_MS = 60_000;
/** How long an attempt waits for checks in flight to leave it room before it is refused. */
const WAIT_LIMIT_MS = 10_000;

/** Who is trying: the submitted username (known or not) and the client's address. */
export interface ThrottleKey {
  account: string;
  address: string;
}

/** An attempt that may not check a password now: how long to wait, and which key holds it. */
export interface ThrottleRefusal {
  allowed: false;
  retryAfterSeconds: number;
  by: 'account' | 'address';
}

/** An attempt that may check a password: `finish` must be called with the check's outcome. */
export interface ThrottlePass {
  allowed: true;
  /** Records the outcome (at once, unless another process holds the lock). */
  finish(succeeded: boolean): Promise<void>;
}

export type ThrottleStart = ThrottleRefusal | ThrottlePass;

export interface LoginThrottleOptions {
  /** The database the attempts are kept in (shared by every process on the file). */
  client: Database.Database;
  /** Password checks per key within the window; 0 turns throttling off. */
  maxFailures: number;
  windowMs: number;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Waits between looks at the checks in flight; default a timer (tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Runs each write transaction (the app's tick batcher, so the checks of concurrent logins
   * share one commit). Default: each on its own, waiting on timers while another process
   * holds the lock.
   */
  write?: <T>(op: () => T) => Promise<T>;
}

/** The login throttle {@link createLoginThrottle} returns. */
export interface LoginThrottle {
  /**
   * Reserves one password check for `key`. Waits (briefly) while checks in flight fill the
   * key's budget, refuses when failures do.
   */
  begin(key: ThrottleKey): Promise<ThrottleStart>;
}

// Every login digests three keys; the one-shot crypto.hash (Node >= 20.12) skips the Hash
// object that createHash builds. Same digest either way.
function digest(kind: string, ...parts: string[]): string {
  const text = `${kind}\n${parts.join('\n')}`;
  return typeof crypto.hash === 'function'
    ? crypto.hash('sha256', text, 'base64url')
    : createHash('sha256').update(text).digest('base64url');
}

/** A refusal by `by`, to be tried again in `waitMs` (whole seconds, at least 1). */
const refuse = (by: ThrottleRefusal['by'], waitMs: number) =>
  ({
    kind: 'refuse',
    refusal: { allowed: false, by, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  }) as const;

type Decision =
  | { kind: 'pass'; attempt: string }
  | { kind: 'refuse'; refusal: ThrottleRefusal }
  | { kind: 'wait'; by: 'account' | 'address' };

/**
 * A login throttle over password checks, per account and per client address, in a sliding
 * window, kept in SQLite so that every LMS process shares it and a restart forgets nothing.
 *
 * - A check counts when it starts (`pending`) and stays counted only if it fails, so a burst of
 *   parallel wrong passwords gets at most `maxFailures` checks per address, trusted or not (and
 *   per account from untrusted addresses), and successful logins, however many, never count.
 * - An address with `maxFailures` failures in the window is refused until the oldest of them
 *   leaves it. An account with that many is not locked: an untrusted address may check a
 *   password on it once per growing delay (see {@link ACCOUNT_DELAY_BASE_MS}).
 * - An account and address pair that logged in successfully in the last {@link TRUST_MS} is
 *   trusted: its checks are not held by the account's limits (its failures still count), so the
 *   grader fleet keeps logging in while someone guesses its password elsewhere. Its address's
 *   limits hold it as any other: failures refuse it, checks in flight make it wait.
 * - Refused attempts record nothing, so a block ends by itself.
 *
 * @example
 * const throttle = createLoginThrottle({ client: db.$client, maxFailures: 10, windowMs: 300_000, now: Date.now });
 * const start = await throttle.begin({ account: 'alice', address: '10.0.0.7' });
 * if (!start.allowed) return c.json({ detail: 'Too many failed logins' }, 429);
 * const ok = await verify(); start.finish(ok);
 */
export function createLoginThrottle(options: LoginThrottleOptions): LoginThrottle {
  const { client, maxFailures, windowMs, now } = options;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const statements = {
    prune: client.prepare(
      `DELETE FROM login_attempts WHERE (state = 'failed' AND at <= ?) OR (state = 'pending' AND at <= ?)`,
    ),
    failures: client.prepare(
      `SELECT at FROM login_attempts WHERE key = ? AND state = 'failed' AND at > ? ORDER BY at DESC`,
    ),
    pending: client.prepare(
      `SELECT count(*) AS n FROM login_attempts WHERE key = ? AND state = 'pending'`,
    ),
    latest: client.prepare(`SELECT max(at) AS at FROM login_attempts WHERE key = ?`),
    trustedAt: client.prepare('SELECT at FROM login_trust WHERE pair = ?'),
    insert: client.prepare(
      'INSERT INTO login_attempts (key, attempt, state, at) VALUES (?, ?, ?, ?)',
    ),
    finish: client.prepare(`UPDATE login_attempts SET state = 'failed', at = ? WHERE attempt = ?`),
    forget: client.prepare('DELETE FROM login_attempts WHERE attempt = ?'),
    trust: client.prepare(
      'INSERT INTO login_trust (pair, at) VALUES (?, ?) ON CONFLICT (pair) DO UPDATE SET at = excluded.at',
    ),
    pruneTrust: client.prepare('DELETE FROM login_trust WHERE at <= ?'),
  };
  const failuresOf = (key: string, at: number) =>
    (statements.failures.all(key, at - windowMs) as { at: number }[]).map((row) => row.at);
  const pendingOf = (key: string) => (statements.pending.get(key) as { n: number }).n;
  // Local waiters wake as soon as a check of this process ends; other processes' are polled.
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of waiters) waiter();
  };

  /** One look, in one write transaction: pass (and record the pending check), refuse or wait. */
  const look = client.transaction(
    (keys: { address: string; account: string; pair: string }): Decision => {
      const at = now();
      statements.prune.run(at - windowMs, at - PENDING_TTL_MS);
      const addressFailures = failuresOf(keys.address, at);
      if (addressFailures.length >= maxFailures) {
        const oldest = addressFailures[maxFailures - 1] ?? at;
        return refuse('address', oldest + windowMs - at);
      }
      // Checks in flight count for every pair, trusted or not: each may fail, so a burst of any
      // size gets what is left of the address's budget, and the rest wait for their outcomes.
      if (addressFailures.length + pendingOf(keys.address) >= maxFailures) {
        return { kind: 'wait', by: 'address' };
      }
      const trustedAt = (statements.trustedAt.get(keys.pair) as { at: number } | undefined)?.at;
      const trusted = trustedAt !== undefined && trustedAt > at - TRUST_MS;
      if (!trusted) {
        const accountFailures = failuresOf(keys.account, at).length;
        const accountPending = pendingOf(keys.account);
        if (accountFailures >= maxFailures) {
          // One check at a time, one per delay, growing with the failures.
          const delay = Math.min(
            ACCOUNT_DELAY_MAX_MS,
            ACCOUNT_DELAY_BASE_MS * 2 ** (accountFailures - maxFailures),
          );
          const latest = (statements.latest.get(keys.account) as { at: number | null }).at ?? 0;
          if (latest + delay > at) return refuse('account', latest + delay - at);
          if (accountPending > 0) return { kind: 'wait', by: 'account' };
        } else if (accountFailures + accountPending >= maxFailures) {
          return { kind: 'wait', by: 'account' };
        }
      }
      const attempt = randomUUID();
      statements.insert.run(keys.address, attempt, 'pending', at);
      statements.insert.run(keys.account, attempt, 'pending', at);
      return { kind: 'pass', attempt };
    },
  );

  const record = client.transaction(
    (attempt: string, pair: string, succeeded: boolean, at: number) => {
      if (succeeded) {
        statements.forget.run(attempt);
        statements.trust.run(pair, at);
        statements.pruneTrust.run(at - TRUST_MS);
      } else {
        statements.finish.run(at, attempt);
      }
    },
  );
  /**
   * Runs a write transaction: inside the batch's transaction (as a savepoint) when `write` is
   * given, else on its own, waiting on timers up to `deadlineMs` while another process holds
   * the lock.
   */
  const transact: <T>(op: () => T, deadlineMs?: number) => Promise<T> =
    options.write ?? whenNotBusy;
  /** Records a check's outcome, then wakes this process's waiters. */
  const finish = async (attempt: string, pair: string, succeeded: boolean) => {
    // The outcome's time is when the check ended, not when its batch runs.
    const at = now();
    await transact(() => record.immediate(attempt, pair, succeeded, at));
    wake();
  };

  return {
    async begin({ account, address }) {
      if (maxFailures <= 0) return { allowed: true, finish: async () => undefined };
      const keys = {
        address: digest('address', address),
        account: digest('account', account),
        pair: digest('pair', account, address),
      };
      const deadline = Date.now() + WAIT_LIMIT_MS;
      for (let pause = 5; ; pause = Math.min(100, pause * 2)) {
        let decision: Decision | undefined;
        try {
          // While another process holds the write lock, this waits on timers, not the loop.
          decision = await transact(() => look.immediate(keys), deadline - Date.now());
        } catch (error) {
          if (!(error instanceof DatabaseBusyError)) throw error;
        }
        if (decision?.kind === 'refuse') return decision.refusal;
        if (decision?.kind === 'pass') {
          const { attempt } = decision;
          let done = false;
          return {
            allowed: true,
            async finish(succeeded) {
              if (done) return;
              done = true;
              await finish(attempt, keys.pair, succeeded);
            },
          };
        }
        if (Date.now() >= deadline) {
          return { allowed: false, by: decision?.by ?? 'address', retryAfterSeconds: 1 };
        }
        await new Promise<void>((resolve) => {
          const done = () => {
            waiters.delete(done);
            resolve();
          };
          waiters.add(done);
          void sleep(pause).then(done);
        });
      }
    },
  };
}

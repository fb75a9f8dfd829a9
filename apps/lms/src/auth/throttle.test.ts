import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type LmsDatabase, openDatabase } from '../db/client.ts';
import { createTickBatcher } from '../db/tick-batch.ts';
import { createTestClock, type TestClock } from '../testing/fixtures.ts';
import { endOfTurn, track } from '../testing/timers.ts';
import {
  ACCOUNT_DELAY_MAX_MS,
  createLoginThrottle,
  type LoginThrottle,
  type ThrottleKey,
  TRUST_MS,
} from './throttle.ts';

const WINDOW_MS = 60_000;
const opened: LmsDatabase[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const database of opened.splice(0)) database.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** How the throttle's transactions run: each on its own, or in the app's tick batcher. */
type Mode = 'alone' | 'batched';
let mode: Mode = 'alone';

function throttleOn(
  database: LmsDatabase,
  clock: TestClock,
  maxFailures: number,
  windowMs = WINDOW_MS,
) {
  const batch = mode === 'batched' ? createTickBatcher(database.sqlite) : null;
  return createLoginThrottle({
    client: database.sqlite,
    maxFailures,
    windowMs,
    now: clock.now,
    ...(batch && { write: <T>(op: () => T) => batch.write(op) }),
  });
}

function setup(maxFailures = 3, windowMs = WINDOW_MS) {
  const clock = createTestClock();
  const database = openDatabase({ path: ':memory:' });
  opened.push(database);
  const throttle = throttleOn(database, clock, maxFailures, windowMs);
  return { clock, throttle, database };
}

/** One whole attempt: reserve, then finish with the password check's outcome. */
async function attempt(throttle: LoginThrottle, key: ThrottleKey, succeeds: boolean) {
  const start = await throttle.begin(key);
  if (start.allowed) await start.finish(succeeds);
  return start.allowed ? { allowed: true } : start;
}

async function fail(throttle: LoginThrottle, key: ThrottleKey, times = 1) {
  for (let index = 0; index < times; index++) {
    expect(await attempt(throttle, key, false)).toEqual({ allowed: true });
  }
}

const alice = { account: 'alice', address: '10.0.0.1' };

describe.each(['alone', 'batched'] as const)('login throttle, transactions %s', (each) => {
  beforeEach(() => {
    mode = each;
  });

  it('refuses an address after maxFailures failures, with the seconds until one expires', async () => {
    const { clock, throttle } = setup();
    await fail(throttle, alice, 2);
    clock.advance(10_000);
    await fail(throttle, alice);
    expect(await throttle.begin(alice)).toEqual({
      allowed: false,
      by: 'address',
      retryAfterSeconds: 50,
    });
    clock.advance(49_500);
    expect(await throttle.begin(alice)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    clock.advance(500);
    expect(await attempt(throttle, alice, true)).toEqual({ allowed: true });
  });

  it('slides the window: old failures stop counting one by one', async () => {
    const { clock, throttle } = setup();
    for (let index = 0; index < 3; index++) {
      await fail(throttle, alice);
      clock.advance(20_000);
    }
    // Failures at 0, 20 s and 40 s; now 60 s: the first has left the window.
    await fail(throttle, alice);
    expect(await throttle.begin(alice)).toMatchObject({ allowed: false, retryAfterSeconds: 20 });
  });

  it('does not extend a block with refused attempts', async () => {
    const { clock, throttle } = setup();
    await fail(throttle, alice, 3);
    for (let index = 0; index < 5; index++) {
      clock.advance(10_000);
      expect(await throttle.begin(alice)).toMatchObject({ allowed: false });
    }
    // 50 s later the block still ends when the first failure leaves the window, at 60 s.
    clock.advance(10_000);
    expect(await attempt(throttle, alice, true)).toEqual({ allowed: true });
  });

  it('never counts successful logins, however many', async () => {
    const { throttle } = setup(1);
    for (let index = 0; index < 1000; index++) {
      expect(await attempt(throttle, alice, true)).toEqual({ allowed: true });
    }
  });

  it('throttles one address guessing across many accounts', async () => {
    const { throttle } = setup();
    for (const account of ['a', 'b', 'c']) await fail(throttle, { account, address: '10.0.0.9' });
    expect(await throttle.begin({ account: 'd', address: '10.0.0.9' })).toMatchObject({
      allowed: false,
      by: 'address',
    });
  });

  it('slows an account guessed from many addresses by a short growing delay, never a lockout', async () => {
    const { clock, throttle } = setup(3, 60 * 60_000);
    for (const address of ['10.0.1.1', '10.0.1.2', '10.0.1.3']) {
      await fail(throttle, { account: 'xqueue_svc', address });
    }
    const replica = { account: 'xqueue_svc', address: '10.0.2.1' };
    // Three failures: one check per second for a new address.
    expect(await throttle.begin(replica)).toEqual({
      allowed: false,
      by: 'account',
      retryAfterSeconds: 1,
    });
    clock.advance(1_000);
    await fail(throttle, { account: 'xqueue_svc', address: '10.0.1.4' });
    // Four failures: 2 s since the latest check.
    clock.advance(1_000);
    expect(await throttle.begin(replica)).toMatchObject({ by: 'account', retryAfterSeconds: 1 });
    clock.advance(1_000);
    expect(await attempt(throttle, replica, true)).toEqual({ allowed: true });
    // However many failures, the delay stays at most ACCOUNT_DELAY_MAX_MS.
    for (let index = 0; index < 20; index++) {
      clock.advance(ACCOUNT_DELAY_MAX_MS);
      await fail(throttle, { account: 'xqueue_svc', address: `10.0.3.${index}` });
    }
    const late = { account: 'xqueue_svc', address: '10.0.2.2' };
    expect(await throttle.begin(late)).toMatchObject({
      retryAfterSeconds: ACCOUNT_DELAY_MAX_MS / 1000,
    });
  });

  it('lets a pair that logged in successfully past the account limits, for a day', async () => {
    const { clock, throttle } = setup();
    const fleet = { account: 'xqueue_svc', address: '10.0.0.5' };
    await attempt(throttle, fleet, true);
    const guess = async (prefix: string) => {
      for (const address of ['1', '2', '3'].map((n) => `${prefix}.${n}`)) {
        await fail(throttle, { account: 'xqueue_svc', address });
      }
    };
    await guess('10.0.1');
    expect(await attempt(throttle, fleet, true)).toEqual({ allowed: true });
    expect(await attempt(throttle, fleet, true)).toEqual({ allowed: true });
    clock.advance(TRUST_MS);
    await guess('10.0.2');
    expect(await throttle.begin(fleet)).toMatchObject({ allowed: false, by: 'account' });
  });

  /** 30 wrong passwords for `key` at once: how many were checked, and who refused the rest. */
  async function wrongBurst(throttle: LoginThrottle, key: ThrottleKey) {
    let checks = 0;
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, async () => {
        const start = await throttle.begin(key);
        if (!start.allowed) return start.by;
        checks++;
        // The hash runs on the thread pool meanwhile.
        await new Promise((resolve) => setImmediate(resolve));
        await start.finish(false);
        return 'checked';
      }),
    );
    return { checks, refusedBy: outcomes.filter((outcome) => outcome !== 'checked') };
  }

  it('counts an attempt when it starts: 30 at once get 10 password checks', async () => {
    const { throttle } = setup(10);
    expect(await wrongBurst(throttle, alice)).toEqual({
      checks: 10,
      refusedBy: Array<string>(20).fill('address'),
    });
  });

  it('gives a trusted pair no more: 30 wrong passwords at once get 10 checks, then none', async () => {
    const { clock, throttle } = setup(10);
    await attempt(throttle, alice, true);
    expect(await wrongBurst(throttle, alice)).toEqual({
      checks: 10,
      refusedBy: Array<string>(20).fill('address'),
    });
    clock.advance(WINDOW_MS / 2);
    expect((await wrongBurst(throttle, alice)).checks).toBe(0);
  });

  it('lets every right password of a burst through, however many, once one succeeded', async () => {
    const { throttle } = setup(3);
    const starts = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const start = await throttle.begin(alice);
        if (start.allowed) {
          await new Promise((resolve) => setImmediate(resolve));
          await start.finish(true);
        }
        return start.allowed;
      }),
    );
    expect(starts.every(Boolean)).toBe(true);
  });

  it('is shared by every process on the file and survives a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'throttle-'));
    dirs.push(dir);
    const path = join(dir, 'lms.sqlite');
    const clock = createTestClock();
    const first = openDatabase({ path });
    const second = openDatabase({ path });
    opened.push(first, second);
    await fail(throttleOn(first, clock, 3), alice, 2);
    await fail(throttleOn(second, clock, 3), alice, 1);
    first.close();
    const restarted = openDatabase({ path });
    opened.push(restarted);
    expect(await throttleOn(restarted, clock, 3).begin(alice)).toMatchObject({
      allowed: false,
      by: 'address',
    });
  });

  it('stops counting a check still pending after a minute: its process died before finishing', async () => {
    const { clock, throttle } = setup(1);
    const dead = await throttle.begin(alice);
    expect(dead.allowed).toBe(true);
    clock.advance(60_000);
    expect(await attempt(throttle, alice, true)).toEqual({ allowed: true });
  });

  it('is off with maxFailures 0', async () => {
    const { throttle } = setup(0);
    for (let index = 0; index < 50; index++) {
      expect(await attempt(throttle, alice, false)).toEqual({ allowed: true });
    }
  });
});

describe.each(['alone', 'batched'] as const)(
  'login throttle waiting for checks in flight, transactions %s, on a virtual clock',
  (each) => {
    beforeEach(() => {
      mode = each;
      // The wait's timers and its deadline's clock; setImmediate stays real.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('answers a waiting attempt as soon as the check in flight fails, with no time passing', async () => {
      const { throttle } = setup(1);
      const first = await throttle.begin(alice);
      expect(first.allowed).toBe(true);
      const second = throttle.begin(alice);
      const state = track(second);
      for (let turn = 0; turn < 5; turn++) await endOfTurn();
      expect(state.settled).toBe(false);
      if (first.allowed) await first.finish(false);
      for (let turn = 0; turn < 5 && !state.settled; turn++) await endOfTurn();
      expect(state.settled).toBe(true);
      expect(await second).toEqual({ allowed: false, by: 'address', retryAfterSeconds: 60 });
    });

    it('refuses an attempt still waiting after 10 s, for a second, when the check never ends', async () => {
      const { throttle } = setup(1);
      expect((await throttle.begin(alice)).allowed).toBe(true);
      const started = Date.now();
      const second = throttle.begin(alice);
      const state = track(second);
      const step = async () => {
        await endOfTurn();
        await vi.advanceTimersByTimeAsync(10);
      };
      while (Date.now() - started < 9_990) await step();
      expect(state.settled).toBe(false);
      while (!state.settled && Date.now() - started < 11_000) await step();
      expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
      expect(await second).toEqual({ allowed: false, by: 'address', retryAfterSeconds: 1 });
    });
  },
);

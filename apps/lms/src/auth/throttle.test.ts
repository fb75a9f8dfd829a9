import { describe, expect, it } from 'vitest';
import { createTestClock } from '../testing/fixtures.ts';
import { createLoginThrottle, type ThrottleKey, TRUST_MS } from './throttle.ts';

const WINDOW_MS = 60_000;

function setup(maxFailures = 3, maxKeys?: number) {
  const clock = createTestClock();
  const throttle = createLoginThrottle({
    maxFailures,
    windowMs: WINDOW_MS,
    now: clock.now,
    maxKeys,
  });
  const fail = (key: ThrottleKey, times = 1) => {
    for (let index = 0; index < times; index++) throttle.recordFailure(key);
  };
  return { clock, throttle, fail };
}

const alice = { account: 'alice', address: '10.0.0.1' };

describe('login throttle', () => {
  it('refuses the attempt after maxFailures failures, with the seconds until one expires', () => {
    const { clock, throttle, fail } = setup();
    fail(alice, 2);
    expect(throttle.check(alice)).toEqual({ allowed: true });
    clock.advance(10_000);
    fail(alice);
    expect(throttle.check(alice)).toEqual({ allowed: false, by: 'address', retryAfterSeconds: 50 });
    clock.advance(49_500);
    expect(throttle.check(alice)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    clock.advance(500);
    expect(throttle.check(alice)).toEqual({ allowed: true });
  });

  it('slides the window: old failures stop counting one by one', () => {
    const { clock, throttle, fail } = setup();
    for (let index = 0; index < 3; index++) {
      fail(alice);
      clock.advance(20_000);
    }
    // Failures at 0, 20 s and 40 s; now 60 s: the first has left the window.
    expect(throttle.check(alice)).toEqual({ allowed: true });
    fail(alice);
    expect(throttle.check(alice)).toMatchObject({ allowed: false, retryAfterSeconds: 20 });
  });

  it('never counts successful logins, however many', () => {
    const { throttle } = setup(1);
    for (let index = 0; index < 10_000; index++) throttle.recordSuccess(alice);
    expect(throttle.check(alice)).toEqual({ allowed: true });
  });

  it('throttles one address guessing across many accounts', () => {
    const { throttle, fail } = setup();
    for (const account of ['a', 'b', 'c']) fail({ account, address: '10.0.0.9' });
    expect(throttle.check({ account: 'd', address: '10.0.0.9' })).toMatchObject({
      allowed: false,
      by: 'address',
    });
    expect(throttle.check({ account: 'd', address: '10.0.0.8' })).toEqual({ allowed: true });
  });

  it('throttles many addresses guessing one account, known or not', () => {
    const { throttle, fail } = setup();
    for (const address of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) {
      fail({ account: 'alice', address });
      fail({ account: 'no-such-user', address });
    }
    for (const account of ['alice', 'no-such-user']) {
      expect(throttle.check({ account, address: '4.4.4.4' })).toMatchObject({
        allowed: false,
        by: 'account',
      });
    }
  });

  it('lets an address that logged in successfully past its account block, for a day', () => {
    const { clock, throttle, fail } = setup();
    const worker = { account: 'svc', address: '10.0.0.2' };
    throttle.recordSuccess(worker);
    for (const address of ['6.6.6.1', '6.6.6.2', '6.6.6.3']) fail({ account: 'svc', address });
    expect(throttle.check({ account: 'svc', address: '6.6.6.4' })).toMatchObject({
      allowed: false,
    });
    expect(throttle.check(worker)).toEqual({ allowed: true });
    clock.advance(TRUST_MS - 1000);
    for (const address of ['6.6.6.1', '6.6.6.2', '6.6.6.3']) fail({ account: 'svc', address });
    expect(throttle.check(worker)).toEqual({ allowed: true });
    clock.advance(1000);
    expect(throttle.check(worker)).toMatchObject({ allowed: false, by: 'account' });
  });

  it('is off with maxFailures 0', () => {
    const { throttle, fail } = setup(0);
    fail(alice, 100);
    expect(throttle.check(alice)).toEqual({ allowed: true });
  });

  it('remembers at most maxKeys keys, forgetting the least recently failed', () => {
    const { throttle, fail } = setup(1, 4);
    fail({ account: 'a', address: 'x1' });
    fail({ account: 'b', address: 'x2' });
    fail({ account: 'c', address: 'x3' });
    // Keys: account a, address x1, account b, address x2, ... only the last four remain.
    expect(throttle.check({ account: 'a', address: 'y' })).toEqual({ allowed: true });
    expect(throttle.check({ account: 'c', address: 'y' })).toMatchObject({ allowed: false });
  });
});

import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionEnd } from './connection.ts';
import { managerWait } from './manager.ts';
import type { Sleep } from './puller.ts';

afterEach(() => {
  vi.useRealTimers();
});

/** A sleep on the (faked) global timers that an abort ends early, as the replica's does. */
const sleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/** Whether a promise has settled yet, without waiting for it. */
function track(promise: Promise<unknown>) {
  const state = { settled: false };
  const done = () => {
    state.settled = true;
  };
  promise.then(done, done);
  return state;
}

describe('managerWait', () => {
  // As xqueue-watcher's Manager.wait: it looks every POLL_TIME, so a replica whose connection
  // died stops at the next look: within POLL_TIME of the death, on a virtual clock.
  it('resolves with the reason at the first look after a connection dies, not before', async () => {
    vi.useFakeTimers();
    const ends: ConnectionEnd[] = [{ kind: 'stopped' }];
    const waiting = managerWait({
      ends,
      pollTimeMs: 500,
      sleep,
      signal: new AbortController().signal,
    });
    const state = track(waiting);
    // Looks at 500 and 1000 ms: every connection that ended did so on purpose.
    await vi.advanceTimersByTimeAsync(1_200);
    expect(state.settled).toBe(false);
    ends.push({ kind: 'died', reason: 'login timed out' });
    await vi.advanceTimersByTimeAsync(299);
    expect(state.settled).toBe(false);
    // The look at 1500 ms, 300 ms after the death.
    await vi.advanceTimersByTimeAsync(1);
    expect(state.settled).toBe(true);
    expect(await waiting).toBe('login timed out');
  });

  it('never resolves once the replica stops on purpose, even if a connection then died', async () => {
    vi.useFakeTimers();
    const ends: ConnectionEnd[] = [];
    const stop = new AbortController();
    const state = track(managerWait({ ends, pollTimeMs: 500, sleep, signal: stop.signal }));
    await vi.advanceTimersByTimeAsync(200);
    stop.abort();
    ends.push({ kind: 'died', reason: 'stopping' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(state.settled).toBe(false);
  });
});

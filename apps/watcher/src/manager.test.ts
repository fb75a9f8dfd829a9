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
  // Manager.wait (xqueue_watcher/manager.py): one client looked at, then POLL_TIME asleep, then
  // the next, so a replica stops when the loop comes round to its dead connection.
  it('looks at one connection per POLL_TIME, in start order, and resolves when it reaches a dead one', async () => {
    vi.useFakeTimers();
    const ends: (ConnectionEnd | undefined)[] = [];
    const waiting = managerWait({
      ends,
      connections: 3,
      pollTimeMs: 500,
      sleep,
      signal: new AbortController().signal,
    });
    const state = track(waiting);
    // Looks at connections 0, 1, 2 at 0, 500 and 1000 ms; connection 1 stopped on purpose.
    ends[1] = { kind: 'stopped' };
    await vi.advanceTimersByTimeAsync(1_200);
    expect(state.settled).toBe(false);
    // Connection 0 dies at 1200 ms; the loop is back at it at 1500 ms.
    ends[0] = { kind: 'died', reason: 'login timed out' };
    await vi.advanceTimersByTimeAsync(299);
    expect(state.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(state.settled).toBe(true);
    expect(await waiting).toBe('login timed out');
  });

  it('sees a death only when its turn comes: up to connections x POLL_TIME later', async () => {
    vi.useFakeTimers();
    const ends: (ConnectionEnd | undefined)[] = [];
    const state = track(
      managerWait({
        ends,
        connections: 4,
        pollTimeMs: 500,
        sleep,
        signal: new AbortController().signal,
      }),
    );
    // Connection 0 was looked at at 0 ms and dies at 100 ms: the next look at it is at 2000 ms.
    await vi.advanceTimersByTimeAsync(100);
    ends[0] = { kind: 'died', reason: 'connection reset' };
    await vi.advanceTimersByTimeAsync(1_899);
    expect(state.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(state.settled).toBe(true);
  });

  it('never resolves once the replica stops on purpose, even if a connection then died', async () => {
    vi.useFakeTimers();
    const ends: (ConnectionEnd | undefined)[] = [];
    const stop = new AbortController();
    const state = track(
      managerWait({ ends, connections: 1, pollTimeMs: 500, sleep, signal: stop.signal }),
    );
    await vi.advanceTimersByTimeAsync(200);
    stop.abort();
    ends[0] = { kind: 'died', reason: 'stopping' };
    await vi.advanceTimersByTimeAsync(5_000);
    expect(state.settled).toBe(false);
  });
});

/**
 * Whether a promise has settled yet, without waiting for it: for tests that move a virtual
 * clock and look in between.
 *
 * @example
 * const state = track(waiting);
 * await vi.advanceTimersByTimeAsync(299);
 * expect(state.settled).toBe(false);
 */
export function track(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  const done = () => {
    state.settled = true;
  };
  promise.then(done, done);
  return state;
}

/** One real turn of the event loop (the tick batcher runs its batch on `setImmediate`). */
export const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs steps one after another per key (a user id), steps of different keys side by side; a
 * failed step does not stop the ones queued after it. Keys with nothing queued are forgotten.
 *
 * @example
 * const queue = new PerUserQueue();
 * await queue.run(userId, () => admitNow(request));
 */
export class PerUserQueue {
  readonly #tails = new Map<string, Promise<unknown>>();
  /** Steps of each key not yet settled: the running one and those queued behind it. */
  readonly #pending = new Map<string, number>();

  run<T>(key: string, step: () => T | Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(step);
    const settled = next.catch(() => undefined);
    this.#tails.set(key, settled);
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    void settled.then(() => {
      const left = (this.#pending.get(key) ?? 1) - 1;
      if (left === 0) this.#pending.delete(key);
      else this.#pending.set(key, left);
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
    return next;
  }

  /** How many steps of `key` wait behind the one running (0 when at most one is queued). */
  waiting(key: string): number {
    return Math.max(0, (this.#pending.get(key) ?? 0) - 1);
  }

  /** Keys with a step running or queued. */
  get size(): number {
    return this.#tails.size;
  }
}

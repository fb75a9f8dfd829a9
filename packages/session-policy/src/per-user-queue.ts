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

  run<T>(key: string, step: () => T | Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(step);
    const settled = next.catch(() => undefined);
    this.#tails.set(key, settled);
    void settled.then(() => {
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
    return next;
  }

  /** Keys with a step running or queued. */
  get size(): number {
    return this.#tails.size;
  }
}

/**
 * Session id -> user id, for the Redis registry; the least recently used entry goes first once
 * `limit` is reached. A session id names one user for good (ids are random), so an entry is
 * never wrong about the user; whether the session is live is always asked of Redis.
 */
export class SessionUserCache {
  readonly #users = new Map<string, string>();

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new Error(`userCacheSize must be a non-negative integer: ${limit}`);
    }
  }

  get(sessionId: string): string | undefined {
    const userId = this.#users.get(sessionId);
    if (userId !== undefined) this.set(sessionId, userId);
    return userId;
  }

  set(sessionId: string, userId: string): void {
    this.#users.delete(sessionId);
    if (this.limit === 0) return;
    this.#users.set(sessionId, userId);
    const oldest = this.#users.keys().next();
    if (this.#users.size > this.limit && !oldest.done) this.#users.delete(oldest.value);
  }

  delete(sessionId: string): void {
    this.#users.delete(sessionId);
  }
}

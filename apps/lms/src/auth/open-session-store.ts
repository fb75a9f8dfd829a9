import { Redis } from 'ioredis';
import type { ClientDb } from '../db/client.ts';
import type { LmsConfig } from '../env.ts';
import { createRedisSessionStore } from './redis-session-store.ts';
import { createSessionStore, type SessionStore } from './session-store.ts';

/** A session store opened from the configuration, and how to let go of its connection. */
export interface OpenedSessionStore {
  store: SessionStore;
  close(): void;
}

export interface OpenSessionStoreOptions {
  /** Milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
  /**
   * Runs the Redis store's SQLite writes (see RedisSessionStoreOptions.write): the server passes
   * its tick batcher's; default each in its own transaction, as the command line needs.
   */
  write?: <T>(op: () => T) => Promise<T>;
}

/**
 * The session store `SESSION_STORE` names, for the command line: the SQLite store on `db`, or
 * the Redis store (its own connection, closed by `close`).
 *
 * @example
 * const { store, close } = openSessionStore(config, database.db);
 * try { await store.endAll(userId, 'staff', { endedBy: '(cli)' }); } finally { close(); }
 */
export function openSessionStore(
  config: Pick<LmsConfig, 'sessionStore' | 'sessionTtlSeconds' | 'enforcement'>,
  db: ClientDb,
  options: OpenSessionStoreOptions = {},
): OpenedSessionStore {
  const now = options.now ?? Date.now;
  const ttlMs = config.sessionTtlSeconds * 1000;
  if (config.sessionStore.kind === 'sqlite') {
    return {
      store: createSessionStore({ db, ttlMs, now, enforcement: config.enforcement }),
      close: () => undefined,
    };
  }
  // A command fails at once, rather than waiting for a Redis that is not there.
  const redis = new Redis(config.sessionStore.url, {
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  return {
    store: createRedisSessionStore({
      db,
      redis,
      prefix: config.sessionStore.prefix,
      enforcement: config.enforcement,
      ttlMs,
      now,
      ...(options.write && { write: options.write }),
    }),
    close: () => redis.disconnect(),
  };
}

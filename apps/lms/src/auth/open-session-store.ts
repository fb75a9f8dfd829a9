import { eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import type { ClientDb, Db } from '../db/client.ts';
import { sessionStoreRecord } from '../db/schema.ts';
import type { LmsConfig } from '../env.ts';
import { createRedisSessionStore } from './redis-session-store.ts';
import { createSessionStore, type SessionStore } from './session-store.ts';

/** Where sessions live, as `SESSION_STORE` (and the Redis variables) say. */
export type SessionStoreConfig = LmsConfig['sessionStore'];

/** A session store opened from the configuration, and how to let go of its connection. */
export interface OpenedSessionStore {
  store: SessionStore;
  /** Which store it is, as messages name it. */
  where: SessionStoreConfig;
  close(): void;
}

/**
 * The store the LMS uses is Redis and this process cannot reach it (down, a wrong URL, a
 * password it lacks). The message says which Redis and what to do.
 */
export class SessionStoreUnreachableError extends Error {
  override readonly name = 'SessionStoreUnreachableError';

  /** Why, as Redis or the connection said it. */
  readonly reason: string;

  constructor(
    readonly url: string,
    readonly prefix: string,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `the LMS keeps its sessions in Redis (prefix ${prefix}), and the session Redis at ` +
        `${url} cannot be reached (${reason}): start it, or give this shell SESSION_STORE=redis ` +
        'and SESSION_REDIS_URL as the LMS has them (with the password, if Redis has one)',
      { cause },
    );
    this.reason = reason;
  }
}

/** A Redis URL without its credentials: what the database and messages may hold. */
export function withoutCredentials(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

/**
 * Records where this server keeps sessions (`SESSION_STORE`), so that the command line acts on
 * the same sessions whatever its own shell says. Every server start writes it; the last one
 * started on the file wins. The Redis URL is kept without credentials.
 *
 * @example
 * recordSessionStore(database.db, config.sessionStore, Date.now());
 */
export function recordSessionStore(db: Db, where: SessionStoreConfig, at: number): void {
  const row = {
    kind: where.kind,
    redisUrl: where.kind === 'redis' ? withoutCredentials(where.url) : null,
    redisPrefix: where.kind === 'redis' ? where.prefix : null,
    recordedAt: at,
  };
  db.insert(sessionStoreRecord)
    .values({ id: 1, ...row })
    .onConflictDoUpdate({ target: sessionStoreRecord.id, set: row })
    .run();
}

/**
 * The sessions store the LMS on this database uses: the one its last server start recorded
 * (the shell's own Redis URL is used to reach a recorded Redis, since the record holds no
 * password), else, before any server recorded one, the shell's `SESSION_STORE`.
 *
 * @example
 * serverSessionStore(db, { kind: 'sqlite' }); // { kind: 'redis', url: 'redis://…', prefix: 'lms:' }
 */
export function serverSessionStore(db: Db, shell: SessionStoreConfig): SessionStoreConfig {
  const recorded = db.select().from(sessionStoreRecord).where(eq(sessionStoreRecord.id, 1)).get();
  if (!recorded) return shell;
  if (recorded.kind === 'sqlite') return { kind: 'sqlite' };
  return {
    kind: 'redis',
    url: shell.kind === 'redis' ? shell.url : (recorded.redisUrl ?? ''),
    prefix: recorded.redisPrefix ?? '',
  };
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

/** {@link openSessionStore}'s store, with its Redis connection when it has one. */
function openStore(
  config: Pick<LmsConfig, 'sessionStore' | 'sessionTtlSeconds' | 'enforcement'>,
  db: ClientDb,
  options: OpenSessionStoreOptions,
): OpenedSessionStore & { redis: Redis | null } {
  const now = options.now ?? Date.now;
  const ttlMs = config.sessionTtlSeconds * 1000;
  const where = config.sessionStore;
  if (where.kind === 'sqlite') {
    return {
      store: createSessionStore({ db, ttlMs, now, enforcement: config.enforcement }),
      where,
      redis: null,
      close: () => undefined,
    };
  }
  // A command fails at once, rather than waiting for a Redis that is not there. It connects
  // with its first command.
  const redis = new Redis(where.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  return {
    store: createRedisSessionStore({
      db,
      redis,
      prefix: where.prefix,
      enforcement: config.enforcement,
      ttlMs,
      now,
      ...(options.write && { write: options.write }),
    }),
    where,
    redis,
    close: () => redis.disconnect(),
  };
}

/**
 * The session store `config.sessionStore` names: the SQLite store on `db`, or the Redis store
 * (its own connection, closed by `close`).
 *
 * @example
 * const { store, close } = openSessionStore(config, database.db);
 * try { await store.admit(request); } finally { close(); }
 */
export function openSessionStore(
  config: Pick<LmsConfig, 'sessionStore' | 'sessionTtlSeconds' | 'enforcement'>,
  db: ClientDb,
  options: OpenSessionStoreOptions = {},
): OpenedSessionStore {
  const { store, where, close } = openStore(config, db, options);
  return { store, where, close };
}

/**
 * Opens the session store the LMS on `db` uses ({@link serverSessionStore}), for the command
 * line: the SQLite store on `db`, or the Redis store on a connection of its own (closed by
 * `close`), checked with a PING. Rejects with {@link SessionStoreUnreachableError} when that
 * Redis cannot be reached, so a command never reports on sessions it cannot see.
 *
 * @example
 * const { store, close } = await openServerSessionStore(config, database.db);
 * try { await store.endAll(userId, 'staff', { endedBy: '(cli)' }); } finally { close(); }
 */
export async function openServerSessionStore(
  config: Pick<LmsConfig, 'sessionStore' | 'sessionTtlSeconds' | 'enforcement'>,
  db: ClientDb,
): Promise<OpenedSessionStore> {
  const where = serverSessionStore(db, config.sessionStore);
  const { redis, ...opened } = openStore({ ...config, sessionStore: where }, db, {});
  if (redis === null || where.kind !== 'redis') return opened;
  try {
    await redis.connect();
    // Connecting succeeds without the password a Redis may require: a command says so.
    await redis.ping();
  } catch (error) {
    opened.close();
    throw new SessionStoreUnreachableError(withoutCredentials(where.url), where.prefix, error);
  }
  return opened;
}

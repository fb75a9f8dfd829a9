import { eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import type { ClientDb, Db } from '../db/client.ts';
import { sessionStoreRecord } from '../db/schema.ts';
import type { LmsConfig } from '../env.ts';
import { createRedisSessionStore } from './redis-store.ts';
import { createSqliteSessionStore } from './sqlite-store.ts';
import type { SessionStore, SessionStoreOptions } from './store.ts';

/** Where sessions live, as `SESSION_STORE` (and the Redis variables) say. */
export type SessionStoreConfig = LmsConfig['sessionStore'];

/** The settings a session store is opened with (all from the environment; see env.ts). */
export type SessionStoreSettings = Pick<
  LmsConfig,
  'sessionStore' | 'sessionTtlSeconds' | 'enforcement'
>;

/** Which backend keeps the sessions: SQLite (the database itself), or Redis on a given client. */
export type SessionBackend = { kind: 'sqlite' } | { kind: 'redis'; client: Redis; prefix: string };

/**
 * Creates the session store on `backend`: every session store of the LMS is built here, the
 * server's (app.ts) and the command line's ({@link openSessionStore}).
 *
 * @example
 * const store = createSessionStore({ kind: 'redis', client: redis, prefix: 'lms:' },
 *   { db, ttlMs: 1_209_600_000, now: Date.now });
 */
export function createSessionStore(
  backend: SessionBackend,
  options: SessionStoreOptions,
): SessionStore {
  if (backend.kind === 'sqlite') return createSqliteSessionStore(options);
  return createRedisSessionStore({ ...options, redis: backend.client, prefix: backend.prefix });
}

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
function withoutCredentials(url: string): string {
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
function serverSessionStore(db: Db, shell: SessionStoreConfig): SessionStoreConfig {
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
   * Runs the store's SQLite writes (see SessionStoreOptions.write): the bench passes its tick
   * batcher's; default each in its own transaction, as the command line needs.
   */
  write?: <T>(op: () => T) => Promise<T>;
}

/** {@link openSessionStore}'s store, with its Redis connection when it has one. */
function openStore(
  config: SessionStoreSettings,
  db: ClientDb,
  options: OpenSessionStoreOptions,
): OpenedSessionStore & { redis: Redis | null } {
  const where = config.sessionStore;
  const storeOptions: SessionStoreOptions = {
    db,
    ttlMs: config.sessionTtlSeconds * 1000,
    now: options.now ?? Date.now,
    enforcement: config.enforcement,
    ...(options.write && { write: options.write }),
  };
  if (where.kind === 'sqlite') {
    const store = createSessionStore(where, storeOptions);
    return { store, where, redis: null, close: () => undefined };
  }
  // A command fails at once, rather than waiting for a Redis that is not there. It connects
  // with its first command.
  const redis = new Redis(where.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  const backend = { kind: 'redis', client: redis, prefix: where.prefix } as const;
  return {
    store: createSessionStore(backend, storeOptions),
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
  config: SessionStoreSettings,
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
  config: SessionStoreSettings,
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

import { type RedisHandle, useRedis } from '@storm-lab/harness';
import { afterAll, beforeAll } from 'vitest';

/** Where a test LMS keeps its sessions (SESSION_STORE). */
export type TestSessionStore = 'sqlite' | 'redis';

/** The Redis of a test file: see {@link useTestRedis}. */
export interface TestRedis {
  /** Its URL; only inside a test or hook (it starts before the file's tests). */
  url(): string;
  /** `createTestLms`'s `redisUrl` for sessions in `store`: this Redis's URL, or none. */
  urlFor(store: TestSessionStore): string | undefined;
}

/**
 * Gives a test file a Redis: the one REDIS_URL names, else a private `redis-server` on a free
 * port, started before the file's tests and stopped after them (never the machine's shared one).
 *
 * @example
 * const redis = useTestRedis();
 * lms = await createTestLms({ redisUrl: redis.urlFor('redis') });
 */
export function useTestRedis(): TestRedis {
  let handle: RedisHandle | undefined;
  beforeAll(async () => {
    handle = await useRedis(process.env.REDIS_URL);
  });
  afterAll(() => handle?.stop());
  const url = () => {
    if (!handle) throw new Error('the test Redis is not started yet: ask for it inside a test');
    return handle.url;
  };
  return { url, urlFor: (store) => (store === 'redis' ? url() : undefined) };
}

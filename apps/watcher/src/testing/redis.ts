import { startRedis } from '@storm-lab/harness';

/**
 * The Redis a test uses: `REDIS_URL` when CI provides one, else a private `redis-server`.
 * Never the machine's shared Redis on 6379; callers isolate themselves with unique prefixes.
 *
 * @example
 * const redis = await testRedis();
 * try { ... redis.url ... } finally { await redis.stop(); }
 */
export async function testRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const shared = process.env.REDIS_URL;
  if (shared) return { url: shared, stop: async () => undefined };
  const redis = await startRedis();
  return { url: redis.url, stop: () => redis.stop() };
}

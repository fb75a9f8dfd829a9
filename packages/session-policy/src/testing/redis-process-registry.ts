import { Redis } from 'ioredis';
import { z } from 'zod';
import { createRedisSessionRegistry } from '../redis-registry.ts';
import type { SessionRegistry } from '../registry.ts';

const configSchema = z.object({
  url: z.string().min(1),
  prefix: z.string(),
  decideInRedis: z.boolean().default(true),
});

/** What a child process needs to open the parent's Redis registry. */
export type RedisProcessConfig = z.infer<typeof configSchema>;

const connections = new WeakMap<SessionRegistry, Redis>();

/**
 * The `processes.module` of the Redis registry's conformance run: each child opens its own
 * connection, so the logins really race between processes.
 *
 * @example
 * const registry = await createRegistry({ url: 'redis://127.0.0.1:6390', prefix: 'sp-test:1:' });
 */
export async function createRegistry(config: unknown): Promise<SessionRegistry> {
  const { url, prefix, decideInRedis } = configSchema.parse(config);
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  const registry = createRedisSessionRegistry(redis, { prefix, decideInRedis });
  connections.set(registry, redis);
  return registry;
}

export async function destroyRegistry(registry: SessionRegistry): Promise<void> {
  await connections.get(registry)?.quit();
}

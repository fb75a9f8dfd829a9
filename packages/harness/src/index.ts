export type { ManagedProcess, SpawnOptions } from './process.ts';
export { freePort, spawnManaged, waitFor } from './process.ts';
export type { LocalRedis } from './redis.ts';
export { startRedis } from './redis.ts';

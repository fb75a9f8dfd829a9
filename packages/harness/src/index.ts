export { type ChromiumLaunch, chromiumLaunch } from './chromium.ts';
export type { LocalLms, StartLmsOptions } from './lms.ts';
export { LmsStartError, startLms } from './lms.ts';
export type { ManagedProcess, SpawnOptions } from './process.ts';
export { freePort, processExists, spawnManaged, waitFor } from './process.ts';
export type { Sample } from './prometheus.ts';
export { histogramQuantile, parsePrometheus, sumMetric, sumOf } from './prometheus.ts';
export type { LocalRedis, RedisHandle } from './redis.ts';
export { startRedis, useRedis } from './redis.ts';
export type {
  Launched,
  SupervisedProcessOptions,
  SuperviseOptions,
  SupervisorTimers,
} from './supervisor.ts';
export { CrashLoopBackoff, SupervisedProcess } from './supervisor.ts';
export type {
  StartedReplica,
  StartWatchersOptions,
  WatcherEventLine,
  WatcherFleet,
} from './watcher.ts';
export { startWatchers } from './watcher.ts';

export type { WatcherClientOptions } from './client.ts';
export { createWatcherClient } from './client.ts';
export type { ManagerSettings, QueueConfig, WatcherConfig } from './config.ts';
export { ConfigError, loadConfig } from './config.ts';
export type { ConnectionEnd, ConnectionOptions, GradeViaJob } from './connection.ts';
export { processOne, runConnection } from './connection.ts';
export type { WatcherEnv, WatcherMode } from './env.ts';
export { ENV_SCHEMA, EnvError, parseEnv } from './env.ts';
export type { WatcherEvent } from './events.ts';
export { logEvent } from './events.ts';
export type { Grader, GraderDeps, HandlerSpec } from './graders.ts';
export {
  chainGraders,
  createGrader,
  HANDLER_NAMES,
  MalformedSubmissionError,
  parseHandler,
  TransientGraderError,
} from './graders.ts';
export type { AddedJob, GradeJobData, GradeJobResult } from './jobs.ts';
export {
  addGradeJob,
  GRADE_JOB_OPTIONS,
  gradeJobId,
  gradeQueueName,
  toGradeJob,
} from './jobs.ts';
export type { ManagerWaitOptions } from './manager.ts';
export { managerWait } from './manager.ts';
export type { WatcherMetrics } from './metrics.ts';
export { createMetrics, serveMetrics } from './metrics.ts';
export type { GradeProcessorDeps } from './processor.ts';
export { createGradeProcessor } from './processor.ts';
export type { PullerOptions, Sleep } from './puller.ts';
export { runHardenedPuller } from './puller.ts';
export type { Replica, ReplicaOptions } from './replica.ts';
export { startReplica } from './replica.ts';

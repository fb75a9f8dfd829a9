export type { ManagerSettings, QueueConfig, WatcherConfig } from './config.ts';
export { ConfigError, loadConfig } from './config.ts';
export { CookieJar } from './cookie-jar.ts';
export type { ReloginMode, WatcherEnv } from './env.ts';
export { EnvError, parseEnv } from './env.ts';
export type { Grader, GraderDeps, HandlerSpec } from './graders.ts';
export {
  createGrader,
  HANDLER_NAMES,
  MalformedSubmissionError,
  parseHandler,
  TransientGraderError,
} from './graders.ts';
export type { GradeJobData, GradeJobResult } from './jobs.ts';
export { gradeJobId, gradeQueueName } from './jobs.ts';
export type { WatcherMetrics } from './metrics.ts';
export { createMetrics, serveMetrics } from './metrics.ts';
export { createGradeProcessor } from './processor.ts';
export type { Replica, ReplicaOptions } from './replica.ts';
export { startReplica } from './replica.ts';
export { XQueueClient } from './xqueue-client.ts';

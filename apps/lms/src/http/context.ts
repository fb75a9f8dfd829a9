import type { Logger } from 'pino';
import type { LoginService } from '../auth/login.ts';
import type { Db } from '../db/client.ts';
import type { TickBatcher } from '../db/tick-batch.ts';
import type { LiveSeries } from '../ops/live-stats.ts';
import type { LmsMetrics } from '../ops/metrics.ts';
import type { StormWatch } from '../ops/storm-watch.ts';
import type { PolicyStore } from '../policy/policy-store.ts';
import type { SubmissionQueue } from '../queue/submission-queue.ts';
import type { SessionEnd, SessionStore } from '../sessions/store.ts';
import type { LmsUser } from '../users.ts';
import type { ProxyTrust } from './client-address.ts';

/** What every route module is built from (created once per app in createApp). */
export interface Services {
  db: Db;
  store: SessionStore;
  /** Runs the per-request queries of one event-loop turn in shared transactions. */
  batch: TickBatcher;
  login: LoginService;
  metrics: LmsMetrics;
  /** With LMS_WORKERS > 1: every worker's metrics, summed (see cluster/); else absent. */
  clusterMetrics?: () => Promise<string>;
  /** The dashboard's per-second series of the whole LMS (every worker's, added up). */
  liveSeries: (seconds: number, at: number) => Promise<LiveSeries>;
  /** The LMS-wide storm detector (the primary's, with LMS_WORKERS > 1). */
  detector: StormWatch;
  logger: Logger;
  /** The session policy now: environment defaults plus what staff saved on the dashboard. */
  policy: PolicyStore;
  /** Evictions per minute of one account that the detector calls a storm. */
  stormAlertEvictionsPerMinute: number;
  /** The grader side of the submissions: pull, put_result, lengths (statements prepared once). */
  queue: SubmissionQueue;
  sessionTtlSeconds: number;
  /** TRUST_PROXY compiled: which peers' X-Forwarded-* headers count (see clientAddress). */
  trustProxy: ProxyTrust;
  now: () => number;
}

/** The authenticated user of a request. */
export interface Auth {
  sessionId: string;
  user: LmsUser;
}

/** Hono environment of the LMS: what the session middleware puts on the context. */
export interface LmsEnv {
  Variables: {
    auth: Auth | null;
    /** Why the session named by the request's cookie is gone, when we know. */
    sessionEnd: SessionEnd | null;
  };
}

import { type XQueueClient, XQueueTimeoutError } from '@storm-lab/lms-client';
import type { Logger } from 'pino';
import { logEvent } from './events.ts';
import { type GradeJobData, type GradeJobResult, toGradeJob } from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { Sleep } from './puller.ts';

/** Grades one pull through BullMQ and resolves with the finished job's result. */
export type GradeViaJob = (jobId: string, data: GradeJobData) => Promise<GradeJobResult>;

export interface ConnectionOptions {
  client: XQueueClient;
  grade: GradeViaJob;
  /** What every job of this connection carries besides the pull itself. */
  jobMeta: Pick<GradeJobData, 'handlers' | 'serverUrl' | 'queue' | 'pulledBy'>;
  pollIntervalMs: number;
  loginPollIntervalMs: number;
  sleep: Sleep;
  now: () => number;
  metrics: WatcherMetrics;
  logger: Logger;
  /** Aborting ends the loop once the submission in hand (if any) is posted. */
  signal: AbortSignal;
}

/** How a connection's loop ended. */
export type ConnectionEnd = { kind: 'stopped' } | { kind: 'died'; reason: string };

/**
 * One connection as upstream's `XQueueClient.run` (xqueue_watcher/client.py): the first login
 * retries every LOGIN_POLL_INTERVAL, and an exception during it (a timeout, an unreachable
 * server) ends the connection, as it ends upstream's thread. Then one serial loop: pull, grade,
 * post on this connection's own session, pull again at once; sleep POLL_INTERVAL only after an
 * empty or failed poll.
 *
 * @example
 * const end = await runConnection({ client, grade, signal, ... }); // { kind: 'died', reason }
 */
export async function runConnection(options: ConnectionOptions): Promise<ConnectionEnd> {
  const { client, signal, sleep, logger } = options;
  try {
    let loggedIn = await client.login();
    while (!loggedIn && !signal.aborted) {
      logger.error('could not log in; retrying every LOGIN_POLL_INTERVAL');
      await sleep(options.loginPollIntervalMs, signal);
      if (signal.aborted) break;
      loggedIn = await client.login();
    }
  } catch (error) {
    return { kind: 'died', reason: (error as Error).message };
  }
  while (!signal.aborted) {
    if (!(await processOne(options))) await sleep(options.pollIntervalMs, signal);
  }
  return { kind: 'stopped' };
}

/**
 * As upstream's `process_one`: true means "poll again at once". A timeout anywhere in it is
 * true (upstream catches `requests.exceptions.Timeout` there), and so is any other exception.
 */
export async function processOne(options: ConnectionOptions): Promise<boolean> {
  const { client, logger, metrics } = options;
  try {
    const pulled = await client.getSubmission();
    if (pulled.kind !== 'submission') {
      if (pulled.kind === 'failed')
        logger.error({ reason: pulled.reason }, 'get_submission failed');
      return false;
    }
    metrics.pulled.inc({ queue: client.queue });
    // as upstream's _handle_submission with no handler (`"HANDLERS": []`): nothing is posted,
    // `all([])` is true, and the loop pulls again at once; the LMS re-serves it after its lock.
    if (options.jobMeta.handlers.length === 0) {
      logger.debug('pulled a submission this entry has no handler for: not answered');
      return true;
    }
    const pulledAtMs = options.now();
    const job = toGradeJob(pulled.content, { ...options.jobMeta, pulledAtMs, postResult: false });
    if (!job.ok) {
      // Upstream's json.loads or header lookup raises here: logged, and the loop goes on.
      logger.error({ error: job.error }, 'pulled a submission without a usable xqueue_header');
      return true;
    }
    const graded = await options.grade(job.value.jobId, job.value.data);
    const put = await client.putResult(job.value.data.xqueueHeader, graded.result);
    if (put.kind === 'rejected') {
      // As upstream's `_handle_submission`: logged and dropped; the LMS serves it again later.
      metrics.putResultFailures.inc({ queue: client.queue, reason: put.reason });
      logger.error(
        { jobId: job.value.jobId, reason: put.reason, message: put.message },
        'put_result failed',
      );
      return false;
    }
    // The connection's logger names its queue and connection index (replica.ts).
    const fields = { submissionId: job.value.data.submissionId, jobId: job.value.jobId };
    logEvent(logger, 'info', 'result-accepted', fields, 'result accepted');
    metrics.graded.inc({ queue: client.queue, outcome: graded.outcome });
    metrics.jobLatency.observe(Math.max(0, options.now() - pulledAtMs) / 1000);
    return true;
  } catch (error) {
    if (!(error instanceof XQueueTimeoutError)) {
      logger.error({ err: error }, 'error while processing a submission');
    }
    return true;
  }
}

/**
 * Ends a connection as dead: counted, and logged as an event line a supervisor counts.
 */
export function reportDeath(
  options: Pick<ConnectionOptions, 'client' | 'logger' | 'metrics'>,
  reason: string,
) {
  options.metrics.connectionDeaths.inc({ queue: options.client.queue });
  logEvent(options.logger, 'error', 'connection-died', { reason }, 'connection died');
}

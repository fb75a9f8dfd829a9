import type { XQueueClient } from '@storm-lab/lms-client';
import type { Logger } from 'pino';
import type { AddedJob, GradeJobData } from './jobs.ts';
import { toGradeJob } from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';

/** Waits `ms`, or less if `signal` aborts; never rejects. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface PullerOptions {
  client: XQueueClient;
  /** Adds the grading job, or finds the one of the same pull. */
  enqueue(jobId: string, data: GradeJobData): Promise<Pick<AddedJob, 'fresh'>>;
  /** What every job of this connection carries besides the pull itself. */
  jobMeta: Pick<GradeJobData, 'handlers' | 'serverUrl' | 'queue' | 'pulledBy'>;
  pollIntervalMs: number;
  loginPollIntervalMs: number;
  sleep: Sleep;
  now: () => number;
  random: () => number;
  metrics: WatcherMetrics;
  logger: Logger;
  /** Aborting stops the loop after the current request; a pull in hand is still enqueued. */
  signal: AbortSignal;
}

// Login retries back off from LOGIN_POLL_INTERVAL up to this many times it.
const LOGIN_BACKOFF_MAX_FACTOR = 16;

/**
 * The hardened connection loop (beyond upstream): log in with exponential backoff and full
 * jitter, then pull continuously, handing each submission to BullMQ (which grades it, posts the
 * result and retries) instead of grading in line. Timeouts are failures, never a dead loop.
 *
 * @example
 * const stop = new AbortController();
 * const done = runHardenedPuller({ client, enqueue, signal: stop.signal, ... });
 * stop.abort(); await done;
 */
export async function runHardenedPuller(options: PullerOptions): Promise<void> {
  const { client, signal, sleep, logger } = options;
  let failedLogins = 0;
  while (!signal.aborted) {
    if (!client.loggedIn) {
      if (await client.login()) {
        failedLogins = 0;
        continue;
      }
      failedLogins += 1;
      const factor = Math.min(LOGIN_BACKOFF_MAX_FACTOR, 2 ** (failedLogins - 1));
      await sleep(options.loginPollIntervalMs * factor * options.random(), signal);
      continue;
    }
    const pulled = await client.getSubmission();
    if (pulled.kind === 'submission') {
      options.metrics.pulled.inc({ queue: client.queue });
      // A pull already being graded (the LMS serves an expired one again): wait, don't spin.
      if (await enqueuePulled(options, pulled.content)) continue;
    }
    if (pulled.kind === 'failed') logger.warn({ reason: pulled.reason }, 'get_submission failed');
    await sleep(options.pollIntervalMs, signal);
  }
}

/** True when the pull became a new job. */
async function enqueuePulled(options: PullerOptions, content: string): Promise<boolean> {
  const { logger } = options;
  // `"HANDLERS": []`: no job, as upstream answers nothing; then POLL_INTERVAL, not a spin.
  if (options.jobMeta.handlers.length === 0) {
    logger.debug('pulled a submission this entry has no handler for: not answered');
    return false;
  }
  const meta = { ...options.jobMeta, pulledAtMs: options.now(), postResult: true };
  const job = toGradeJob(content, meta);
  if (!job.ok) {
    // Nothing to answer with; the LMS re-serves it after its lock time and logs show why.
    logger.error({ error: job.error }, 'pulled a submission without a usable xqueue_header');
    return false;
  }
  try {
    const added = await options.enqueue(job.value.jobId, job.value.data);
    logger.debug({ jobId: job.value.jobId, fresh: added.fresh }, 'pulled');
    return added.fresh;
  } catch (error) {
    // Redis is down: the LMS still holds the pull lock and re-serves the submission later.
    logger.error({ err: error, jobId: job.value.jobId }, 'could not add grading job');
    return false;
  }
}

import { type Parsed, parseXQueueHeader } from '@storm-lab/xqueue-protocol';
import type { Logger } from 'pino';
import { type GradeJobData, gradeJobId } from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { XQueueClient } from './xqueue-client.ts';

/** Waits `ms`, or less if `signal` aborts; never rejects. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface PullerOptions {
  client: XQueueClient;
  /** Adds the grading job; the same id twice must be a no-op. */
  enqueue(jobId: string, data: GradeJobData): Promise<void>;
  pollIntervalMs: number;
  loginPollIntervalMs: number;
  replicaId: string;
  sleep: Sleep;
  now: () => number;
  metrics: WatcherMetrics;
  logger: Logger;
  /** Aborting stops the loop after the current request; a pull in hand is still enqueued. */
  signal: AbortSignal;
}

/**
 * Turns get_submission's `content` into a job. Only the header must parse here: without it
 * there is no pull key to answer with; a bad body still becomes a job that posts a failure.
 *
 * @example
 * toGradeJob(content, { queue: 'a', pulledAtMs: Date.now(), pulledBy: 'r-1' });
 * // { ok: true, value: { jobId: 'sub-7-k3y', data: { submissionId: 7, ... } } }
 */
export function toGradeJob(
  content: string,
  meta: { queue: string; pulledAtMs: number; pulledBy: string },
): Parsed<{ jobId: string; data: GradeJobData }> {
  let rawHeader: unknown;
  try {
    rawHeader = (JSON.parse(content) as { xqueue_header?: unknown }).xqueue_header;
  } catch {
    return { ok: false, error: 'content is not valid JSON' };
  }
  const header = parseXQueueHeader(rawHeader);
  if (!header.ok) return header;
  const { submission_id: submissionId, submission_key: key } = header.value;
  const data: GradeJobData = { ...meta, submissionId, xqueueHeader: rawHeader as string, content };
  return { ok: true, value: { jobId: gradeJobId(submissionId, key), data } };
}

/**
 * One connection's loop, as upstream's `XQueueClient.run`: log in (retrying every
 * LOGIN_POLL_INTERVAL), then pull; after a pull go again at once, otherwise wait POLL_INTERVAL.
 *
 * @example
 * const stop = new AbortController();
 * const done = runPuller({ client, enqueue, signal: stop.signal, ... });
 * stop.abort(); await done;
 */
export async function runPuller(options: PullerOptions): Promise<void> {
  const { client, signal, sleep, logger } = options;
  while (!signal.aborted) {
    if (!client.loggedIn) {
      if (!(await client.login())) await sleep(options.loginPollIntervalMs, signal);
      continue;
    }
    const pulled = await client.getSubmission();
    if (pulled.kind === 'submission') {
      options.metrics.pulled.inc({ queue: client.queue });
      await enqueuePulled(options, pulled.content);
      continue;
    }
    if (pulled.kind === 'failed') logger.warn({ reason: pulled.reason }, 'get_submission failed');
    await sleep(options.pollIntervalMs, signal);
  }
}

async function enqueuePulled(options: PullerOptions, content: string): Promise<void> {
  const { client, logger } = options;
  const meta = { queue: client.queue, pulledAtMs: options.now(), pulledBy: options.replicaId };
  const job = toGradeJob(content, meta);
  if (!job.ok) {
    // Nothing to answer with; the LMS re-serves it after its lock time and logs show why.
    logger.error({ error: job.error }, 'pulled a submission without a usable xqueue_header');
    return;
  }
  try {
    await options.enqueue(job.value.jobId, job.value.data);
    logger.debug({ jobId: job.value.jobId }, 'pulled');
  } catch (error) {
    // Redis is down: the LMS still holds the pull lock and re-serves the submission later.
    logger.error({ err: error, jobId: job.value.jobId }, 'could not add grading job');
    await options.sleep(options.pollIntervalMs, options.signal);
  }
}

import { decodeSubmission, type GradeResult } from '@storm-lab/xqueue-protocol';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { type Grader, MalformedSubmissionError } from './graders.ts';
import type { GradeJobData, GradeJobResult } from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { XQueueClient } from './xqueue-client.ts';

export interface GradeProcessorDeps {
  graderFor(queue: string): Grader | undefined;
  /** One of this replica's logged-in clients for the queue (round-robin), never a new login. */
  clientFor(queue: string): XQueueClient | undefined;
  metrics: WatcherMetrics;
  logger: Logger;
  now: () => number;
}

/** The LMS must be told, so the student sees an error instead of waiting forever. */
function malformedResult(reason: string): GradeResult {
  const escaped = reason.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return {
    correct: false,
    score: 0,
    msg: `<p>This submission could not be graded: ${escaped}</p>`,
  };
}

async function grade(
  grader: Grader,
  content: string,
  signal: AbortSignal | undefined,
): Promise<{ result: GradeResult; outcome: GradeJobResult['outcome'] }> {
  const decoded = decodeSubmission(content);
  if (!decoded.ok) return { result: malformedResult(decoded.error), outcome: 'malformed' };
  try {
    const result = await grader(decoded.value, signal);
    return { result, outcome: result.correct ? 'correct' : 'incorrect' };
  } catch (error) {
    if (error instanceof MalformedSubmissionError) {
      return { result: malformedResult(error.message), outcome: 'malformed' };
    }
    throw error; // transient: BullMQ retries with backoff
  }
}

/**
 * The BullMQ processor: grades a pulled submission and posts the result through the replica's
 * own authenticated clients. Throws `UnrecoverableError` when retrying cannot help (stale pull
 * key, unknown submission, malformed submission after its failure result was posted).
 *
 * @example
 * const worker = new Worker(gradeQueueName('a'), createGradeProcessor(deps), { connection });
 */
export function createGradeProcessor(deps: GradeProcessorDeps) {
  return async (job: Job<GradeJobData, GradeJobResult>, _token?: string, signal?: AbortSignal) => {
    const { queue, xqueueHeader, content, submissionId, pulledAtMs } = job.data;
    const grader = deps.graderFor(queue);
    const client = deps.clientFor(queue);
    if (!grader || !client) {
      // Another replica with a different config added it; ours cannot help, theirs can.
      throw new Error(`this replica does not watch queue "${queue}"`);
    }
    const { result, outcome } = await grade(grader, content, signal);
    const put = await client.putResult(xqueueHeader, result);
    const log = deps.logger.child({
      queue,
      submissionId,
      jobId: job.id,
      attempt: job.attemptsMade + 1,
    });
    if (put.kind === 'rejected') {
      deps.metrics.putResultFailures.inc({ queue, reason: put.reason });
      log.warn(
        { reason: put.reason, message: put.message, retry: put.retry },
        'put_result not accepted',
      );
      const message = `put_result ${put.reason}: ${put.message}`;
      throw put.retry ? new Error(message) : new UnrecoverableError(message);
    }
    deps.metrics.graded.inc({ queue, outcome });
    deps.metrics.jobLatency.observe(Math.max(0, deps.now() - pulledAtMs) / 1000);
    log.info({ outcome, score: result.score }, 'graded');
    if (outcome === 'malformed') {
      throw new UnrecoverableError(`malformed submission ${submissionId}: failure result posted`);
    }
    return { outcome, score: result.score } satisfies GradeJobResult;
  };
}

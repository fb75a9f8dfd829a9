import type { XQueueClient } from '@storm-lab/lms-client';
import { decodeSubmission, type GradeResult } from '@storm-lab/xqueue-protocol';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { logEvent, logGrading } from './events.ts';
import { type Grader, MalformedSubmissionError } from './graders.ts';
import type { GradeJobData, GradeJobResult } from './jobs.ts';
import type { WatcherMetrics } from './metrics.ts';

export interface GradeProcessorDeps {
  /** The grader for a job's handler list (built once per distinct list). */
  graderFor(handlers: GradeJobData['handlers']): Grader;
  /** Hardened mode: one of this replica's logged-in clients for the queue, never a new login. */
  clientFor(serverUrl: string, queue: string): XQueueClient | undefined;
  metrics: WatcherMetrics;
  logger: Logger;
  now: () => number;
  /**
   * TEST ONLY (`WATCHER_TEST_GRADE_EVERY_JOB_TWICE`, never on by default): every job is graded,
   * and in hardened mode posted, twice, so the graded-twice counts can be shown to catch it.
   */
  gradeEveryJobTwice?: boolean;
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
 * The BullMQ processor: grades a pulled submission and returns the result. A connection in
 * upstream's serial loop waits for that result and posts it itself; a hardened job
 * (`postResult`) posts it here through the replica's own clients and throws
 * `UnrecoverableError` when retrying cannot help (stale pull key, unknown submission).
 *
 * @example
 * const worker = new Worker(gradeQueueName('a'), createGradeProcessor(deps), { connection });
 */
export function createGradeProcessor(deps: GradeProcessorDeps) {
  return async (
    job: Job<GradeJobData, GradeJobResult>,
    _token?: string,
    signal?: AbortSignal,
  ): Promise<GradeJobResult> => {
    let graded = await gradeLogged(deps, job, signal);
    if (deps.gradeEveryJobTwice) graded = await gradeLogged(deps, job, signal);
    return graded;
  };
}

/**
 * One grading of a job, after its `grading-started` line: where grading happens, so that a run
 * counts gradings per submission. The job's `grading-finished` line is printed once BullMQ has
 * marked the job done (see replica.ts): a process killed before it can have its job delivered
 * again, one killed after cannot.
 */
async function gradeLogged(
  deps: GradeProcessorDeps,
  job: Job<GradeJobData, GradeJobResult>,
  signal: AbortSignal | undefined,
): Promise<GradeJobResult> {
  logGrading(deps.logger, 'grading-started', job);
  const { result, outcome } = await grade(
    deps.graderFor(job.data.handlers),
    job.data.content,
    signal,
  );
  if (job.data.postResult) await post(deps, job, result, outcome);
  return { outcome, score: result.score, result };
}

async function post(
  deps: GradeProcessorDeps,
  job: Job<GradeJobData, GradeJobResult>,
  result: GradeResult,
  outcome: GradeJobResult['outcome'],
): Promise<void> {
  const { queue, serverUrl, xqueueHeader, submissionId, pulledAtMs } = job.data;
  const client = deps.clientFor(serverUrl, queue);
  // Another replica with a different config added it; ours cannot post, theirs can.
  if (!client) throw new Error(`this replica has no client for queue "${queue}" at ${serverUrl}`);
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
  // Before BullMQ marks the job done: a replica killed in between leaves the job to be
  // delivered again, and its second post is answered success too (a harmless repeat).
  logEvent(
    deps.logger,
    'info',
    'result-accepted',
    { queue, submissionId, jobId: job.id },
    'result accepted',
  );
  deps.metrics.graded.inc({ queue, outcome });
  deps.metrics.jobLatency.observe(Math.max(0, deps.now() - pulledAtMs) / 1000);
  log.info({ outcome, score: result.score }, 'graded');
}

import { type GradeResult, type Parsed, parseXQueueHeader } from '@storm-lab/xqueue-protocol';
import type { Job, JobsOptions, Queue } from 'bullmq';
import type { HandlerSpec } from './graders.ts';

/** A pulled submission as a BullMQ job: raw strings, so a malformed one still reaches the processor. */
export interface GradeJobData {
  queue: string;
  submissionId: number;
  /** get_submission's `xqueue_header`, posted back unchanged with the result. */
  xqueueHeader: string;
  /** get_submission's whole `content` string. */
  content: string;
  pulledAtMs: number;
  pulledBy: string;
  /** The queue's handlers, so any replica grades it the way the puller's config says. */
  handlers: HandlerSpec[];
  /** The LMS it came from: a hardened job posts its result there. */
  serverUrl: string;
  /**
   * Hardened mode: the job posts its own result through any of the replica's clients.
   * Otherwise (upstream's serial loop) the connection that pulled waits for the job and posts.
   */
  postResult: boolean;
}

/** What a finished job records in BullMQ. */
export interface GradeJobResult {
  outcome: 'correct' | 'incorrect' | 'malformed';
  score: number;
  /** The grader's reply, posted as put_result's `xqueue_body`. */
  result: GradeResult;
}

/**
 * The job id of one pull key: an expired pull served again (same key, as edx-submissions does)
 * finds the job it already has, while a retried submission (new key) is a new job. BullMQ
 * forbids ':' in custom ids, hence the encoding.
 *
 * @example
 * gradeJobId(42, 'a1b2'); // 'sub-42-a1b2'
 */
export function gradeJobId(submissionId: number, submissionKey: string): string {
  return `sub-${submissionId}-${encodeURIComponent(submissionKey)}`;
}

/**
 * The BullMQ queue that carries one xqueue queue's grading work, shared by all replicas.
 *
 * @example
 * gradeQueueName('python-1'); // 'grade-python-1'
 */
export function gradeQueueName(xqueueName: string): string {
  return `grade-${xqueueName}`;
}

/** Retries with backoff for transient failures; finished jobs kept a while for inspection. */
export const GRADE_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 24 * 3600 },
};

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
  meta: Omit<GradeJobData, 'submissionId' | 'xqueueHeader' | 'content'>,
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

/** A grading job as added: `fresh` is false when a job of the same pull already existed. */
export interface AddedJob {
  job: Job<GradeJobData, GradeJobResult>;
  fresh: boolean;
}

/**
 * Adds the grading job of one pull, or finds the job of the same pull (same submission and key,
 * e.g. the LMS served it again): a failed one is retried, any other is left as it is.
 *
 * @example
 * const { job, fresh } = await addGradeJob(queue, jobId, data);
 */
export async function addGradeJob(
  queue: Queue<GradeJobData, GradeJobResult>,
  jobId: string,
  data: GradeJobData,
): Promise<AddedJob> {
  const existing = await queue.getJob(jobId);
  if (existing) {
    if (await existing.isFailed()) await existing.retry('failed');
    return { job: existing, fresh: false };
  }
  // Adding an id that appeared meanwhile is a no-op in BullMQ: still one job per pull.
  const job = await queue.add('grade', data, { ...GRADE_JOB_OPTIONS, jobId });
  return { job, fresh: true };
}

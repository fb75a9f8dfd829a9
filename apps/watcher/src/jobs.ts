import type { JobsOptions } from 'bullmq';

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
}

/** What a finished job records in BullMQ. */
export interface GradeJobResult {
  outcome: 'correct' | 'incorrect' | 'malformed';
  score: number;
}

/**
 * The job id of one pull: the same pull added twice is a no-op, while a re-served submission
 * (new pull key) is a new job. BullMQ forbids ':' in custom ids, hence the encoding.
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

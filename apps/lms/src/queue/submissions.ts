import { createHash } from 'node:crypto';
import { encodeStudentInfo, type SubmissionBody } from '@storm-lab/xqueue-protocol';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { problems, queues, submissions } from '../db/schema.ts';

/** A stored submission row. */
export type SubmissionRow = typeof submissions.$inferSelect;

/** True when the queue exists. */
function queueExists(db: Db, name: string): boolean {
  return (
    db.select({ name: queues.name }).from(queues).where(eq(queues.name, name)).get() !== undefined
  );
}

export interface NewSubmission {
  studentId: string;
  queueName: string;
  problemId: string;
  studentResponse: string;
  now: number;
}

/** The outcome of creating a submission; unknown queue or problem is an expected "no". */
export type CreateOutcome = { ok: true; id: number } | { ok: false; status: 404; message: string };

/**
 * Stores a student's submission with the `xqueue_body` graders will receive, as edx-submissions'
 * get_submission builds it (`grader_payload` is the problem's payload string as stored).
 *
 * @example
 * createSubmission(db, { studentId, queueName: 'test-queue', problemId: 'test-queue-p1', studentResponse: '42', now });
 */
export function createSubmission(db: Db, input: NewSubmission): CreateOutcome {
  if (!queueExists(db, input.queueName)) {
    return { ok: false, status: 404, message: `Queue '${input.queueName}' not found` };
  }
  const problem = db.select().from(problems).where(eq(problems.id, input.problemId)).get();
  if (!problem || problem.queueName !== input.queueName) {
    return {
      ok: false,
      status: 404,
      message: `Problem '${input.problemId}' not found in queue '${input.queueName}'`,
    };
  }
  const anonymousId = createHash('sha256')
    .update(`anon:${input.studentId}`)
    .digest('hex')
    .slice(0, 32);
  const body: SubmissionBody = {
    grader_payload: problem.graderPayload,
    student_info: encodeStudentInfo(anonymousId, input.now),
    student_response: input.studentResponse,
  };
  const row = db
    .insert(submissions)
    .values({
      queueName: input.queueName,
      studentId: input.studentId,
      problemId: input.problemId,
      body: JSON.stringify(body),
      createdAt: input.now,
      statusAt: input.now,
    })
    .returning({ id: submissions.id })
    .get();
  return { ok: true, id: row.id };
}

/** A submission by id, or null. */
export function findSubmission(db: Db, id: number): SubmissionRow | null {
  return db.select().from(submissions).where(eq(submissions.id, id)).get() ?? null;
}

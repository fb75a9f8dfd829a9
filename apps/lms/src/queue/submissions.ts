import { createHash } from 'node:crypto';
import { encodeStudentInfo, type SubmissionBody } from '@storm-lab/xqueue-protocol';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { problems, queues, submissions } from '../db/schema.ts';

/** A stored submission row. */
export type SubmissionRow = typeof submissions.$inferSelect;

const placeholder = (name: string) => sql.placeholder(name);

/**
 * The student API's statements, prepared once per database handle: each submission and each
 * look at one built and compiled its SQL again before (drizzle's query builder).
 */
function statementsFor(db: Db) {
  return {
    queue: db
      .select({ name: queues.name })
      .from(queues)
      .where(eq(queues.name, placeholder('name')))
      .prepare(),
    problem: db
      .select()
      .from(problems)
      .where(eq(problems.id, placeholder('id')))
      .prepare(),
    insert: db
      .insert(submissions)
      .values({
        queueName: placeholder('queueName'),
        studentId: placeholder('studentId'),
        problemId: placeholder('problemId'),
        body: placeholder('body'),
        createdAt: placeholder('createdAt'),
        statusAt: placeholder('statusAt'),
      })
      .returning({ id: submissions.id })
      .prepare(),
    find: db
      .select()
      .from(submissions)
      .where(eq(submissions.id, placeholder('id')))
      .prepare(),
  };
}

const preparedByDb = new WeakMap<Db, ReturnType<typeof statementsFor>>();

function statements(db: Db): ReturnType<typeof statementsFor> {
  let found = preparedByDb.get(db);
  if (!found) {
    found = statementsFor(db);
    preparedByDb.set(db, found);
  }
  return found;
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
  const prepared = statements(db);
  if (prepared.queue.get({ name: input.queueName }) === undefined) {
    return { ok: false, status: 404, message: `Queue '${input.queueName}' not found` };
  }
  const problem = prepared.problem.get({ id: input.problemId });
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
  const row = prepared.insert.get({
    queueName: input.queueName,
    studentId: input.studentId,
    problemId: input.problemId,
    body: JSON.stringify(body),
    createdAt: input.now,
    statusAt: input.now,
  });
  return { ok: true, id: row.id };
}

/** A submission by id, or null. */
export function findSubmission(db: Db, id: number): SubmissionRow | null {
  return statements(db).find.get({ id }) ?? null;
}

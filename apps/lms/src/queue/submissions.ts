import { createHash } from 'node:crypto';
import type { GradeResult, SubmissionBody } from '@storm-lab/xqueue-protocol';
import { and, asc, count, eq, inArray, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { problems, queues, submissions } from '../db/schema.ts';

/** A stored submission row. */
export type SubmissionRow = typeof submissions.$inferSelect;

/** Tunables of the queue: lock time and when a repeatedly abandoned submission fails. */
export interface QueueSettings {
  lockMs: number;
  /** Expired locks after which a submission is marked failed; 0 = never. */
  maxFailures: number;
}

/** True when the queue exists. */
export function queueExists(db: Db, name: string): boolean {
  return (
    db.select({ name: queues.name }).from(queues).where(eq(queues.name, name)).get() !== undefined
  );
}

function servable(lockMs: number, now: number) {
  // A pulled submission whose lock expired is served again, as xqueue does.
  return or(
    eq(submissions.state, 'pending'),
    and(eq(submissions.state, 'pulled'), lte(submissions.pulledAt, now - lockMs)),
  );
}

/** Submissions of a queue that a grader could pull now. */
export function queueLength(db: Db, queueName: string, lockMs: number, now: number): number {
  const row = db
    .select({ n: count() })
    .from(submissions)
    .where(and(eq(submissions.queueName, queueName), servable(lockMs, now)))
    .get();
  return row?.n ?? 0;
}

/** {@link queueLength} for every queue, for the metrics scrape. */
export function queueLengths(
  db: Db,
  lockMs: number,
  now: number,
): { queue: string; length: number }[] {
  const names = db.select({ name: queues.name }).from(queues).orderBy(asc(queues.name)).all();
  return names.map(({ name }) => ({ queue: name, length: queueLength(db, name, lockMs, now) }));
}

function submissionTime(at: number): string {
  // xqueue's student_info carries time.strftime('%Y%m%d%H%M%S') in UTC.
  return new Date(at).toISOString().replace(/[-:T]/g, '').slice(0, 14);
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
 * Stores a student's submission with the `xqueue_body` graders will receive.
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
    student_response: input.studentResponse,
    grader_payload: problem.graderPayload,
    student_info: JSON.stringify({
      anonymous_student_id: anonymousId,
      submission_time: submissionTime(input.now),
    }),
  };
  const row = db
    .insert(submissions)
    .values({
      queueName: input.queueName,
      studentId: input.studentId,
      problemId: input.problemId,
      body: JSON.stringify(body),
      createdAt: input.now,
    })
    .returning({ id: submissions.id })
    .get();
  return { ok: true, id: row.id };
}

/** What a pull found. */
export type PullOutcome =
  | { kind: 'unknown-queue' }
  | { kind: 'empty' }
  | { kind: 'pulled'; id: number; key: string; body: string };

/**
 * Hands the oldest servable submission of a queue to one puller, under a fresh key. Runs in an
 * IMMEDIATE transaction: two pullers, even in two processes, never get the same submission
 * while its lock holds.
 *
 * @example
 * const pull = pullSubmission(db, 'test-queue', { lockMs: 300_000, maxFailures: 0 }, now, key);
 */
export function pullSubmission(
  db: Db,
  queueName: string,
  settings: QueueSettings,
  now: number,
  key: string,
): PullOutcome {
  return db.transaction(
    (tx) => {
      if (!queueExists(tx, queueName)) return { kind: 'unknown-queue' } as const;
      for (;;) {
        const next = tx
          .select()
          .from(submissions)
          .where(and(eq(submissions.queueName, queueName), servable(settings.lockMs, now)))
          .orderBy(asc(submissions.createdAt), asc(submissions.id))
          .limit(1)
          .get();
        if (!next) return { kind: 'empty' } as const;
        const abandoned = next.state === 'pulled' ? 1 : 0;
        const failures = next.failureCount + abandoned;
        if (settings.maxFailures > 0 && failures >= settings.maxFailures) {
          tx.update(submissions)
            .set({ state: 'failed', failureCount: failures })
            .where(eq(submissions.id, next.id))
            .run();
          continue;
        }
        tx.update(submissions)
          .set({
            state: 'pulled',
            pullKey: key,
            pulledAt: now,
            firstPulledAt: next.firstPulledAt ?? now,
            pullCount: sql`${submissions.pullCount} + 1`,
            failureCount: failures,
          })
          .where(eq(submissions.id, next.id))
          .run();
        return { kind: 'pulled', id: next.id, key, body: next.body } as const;
      }
    },
    { behavior: 'immediate' },
  );
}

/** What a put_result did. */
export type PutOutcome =
  | { kind: 'accepted'; queueName: string; latencyMs: number }
  | { kind: 'repeat' }
  | { kind: 'unknown' }
  | { kind: 'stale-key' }
  | { kind: 'conflict' };

/**
 * Records a grader's result if `key` is the submission's current pull key. A repeat with the
 * key that graded it changes nothing; any other key is refused and changes nothing.
 *
 * @example
 * putResult(db, { id: 7, key, result: { correct: true, score: 1, msg: 'ok' }, now });
 */
export function putResult(
  db: Db,
  input: { id: number; key: string; result: GradeResult; now: number },
): PutOutcome {
  return db.transaction(
    (tx) => {
      const row = tx.select().from(submissions).where(eq(submissions.id, input.id)).get();
      if (!row) return { kind: 'unknown' } as const;
      if (row.pullKey !== input.key) return { kind: 'stale-key' } as const;
      if (row.state === 'graded') return { kind: 'repeat' } as const;
      const changed = tx
        .update(submissions)
        .set({
          state: 'graded',
          result: JSON.stringify(input.result),
          gradedAt: input.now,
          resultPosts: sql`${submissions.resultPosts} + 1`,
        })
        .where(
          and(
            eq(submissions.id, input.id),
            eq(submissions.pullKey, input.key),
            inArray(submissions.state, ['pulled', 'failed']),
          ),
        )
        .run().changes;
      if (changed === 0) return { kind: 'conflict' } as const;
      return {
        kind: 'accepted',
        queueName: row.queueName,
        latencyMs: input.now - row.createdAt,
      } as const;
    },
    { behavior: 'immediate' },
  );
}

/** A submission by id, or null. */
export function findSubmission(db: Db, id: number): SubmissionRow | null {
  return db.select().from(submissions).where(eq(submissions.id, id)).get() ?? null;
}

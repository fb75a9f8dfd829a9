import type { GradeResult } from '@storm-lab/xqueue-protocol';
import type { ClientDb } from '../db/client.ts';

/** Tunables of the queue: lock time and when a repeatedly abandoned submission fails. */
export interface QueueSettings {
  lockMs: number;
  /** Expired locks after which a submission is marked failed; 0 = never. */
  maxFailures: number;
}

/** What a pull found. */
export type PullOutcome =
  | { kind: 'unknown-queue' }
  | { kind: 'empty' }
  | { kind: 'pulled'; id: number; key: string; body: string };

/** What a put_result did. */
export type PutOutcome =
  | { kind: 'accepted'; queueName: string; latencyMs: number }
  | { kind: 'repeat' }
  | { kind: 'unknown' }
  | { kind: 'stale-key' }
  | { kind: 'conflict' };

/** A grader's result for a submission, with the key of the pull it answers. */
export interface PutInput {
  id: number;
  key: string;
  result: GradeResult;
  now: number;
}

/** The grader side of the submissions table: what the xqueue endpoints and metrics need. */
export interface SubmissionQueue {
  readonly settings: QueueSettings;
  /** Submissions of a queue a grader could pull now; null when the queue does not exist. */
  length(queueName: string, now: number): number | null;
  /** {@link SubmissionQueue.length} of every queue, by name, for the metrics scrape. */
  lengths(now: number): { queue: string; length: number }[];
  /**
   * Hands the oldest servable submission of a queue to one puller, under `key`. Runs in an
   * IMMEDIATE transaction: two pullers, even in two processes, never get the same submission
   * while its lock holds.
   */
  pull(queueName: string, now: number, key: string): PullOutcome;
  /**
   * Records a grader's result if `key` is the submission's current pull key. A repeat with the
   * key that graded it changes nothing; any other key is refused and changes nothing.
   */
  putResult(input: PutInput): PutOutcome;
}

interface Candidate {
  id: number;
  body: string;
  state: 'pending' | 'pulled';
  failureCount: number;
}

// Servable = pending, or pulled with an expired lock (served again, as xqueue does). The two
// halves are separate index lookups: an OR over both would make SQLite sort every pending row
// of the queue on each pull. `pulled_at <= expired` uses the partial index of pulled rows.
const LENGTH_SQL = `
  SELECT EXISTS (SELECT 1 FROM queues WHERE name = :queue) AS found,
    (SELECT count(*) FROM submissions WHERE queue_name = :queue AND state = 'pending')
    + (SELECT count(*) FROM submissions
        WHERE queue_name = :queue AND state = 'pulled' AND pulled_at <= :expired) AS length`;

const NEXT_SQL = `
  SELECT id, body, state, failureCount FROM (
    SELECT * FROM (
      SELECT id, body, state, failure_count AS failureCount, created_at FROM submissions
      WHERE queue_name = :queue AND state = 'pending' ORDER BY created_at, id LIMIT 1)
    UNION ALL
    SELECT * FROM (
      SELECT id, body, state, failure_count AS failureCount, created_at FROM submissions
      WHERE queue_name = :queue AND state = 'pulled' AND pulled_at <= :expired
      ORDER BY created_at, id LIMIT 1))
  ORDER BY created_at, id LIMIT 1`;

const MARK_PULLED_SQL = `
  UPDATE submissions SET state = 'pulled', pull_key = :key, pulled_at = :now,
    first_pulled_at = coalesce(first_pulled_at, :now), pull_count = pull_count + 1,
    failure_count = :failures
  WHERE id = :id`;

// Only the current pull key of an ungraded submission grades it.
const GRADE_SQL = `
  UPDATE submissions SET state = 'graded', result = :result, graded_at = :now,
    result_posts = result_posts + 1
  WHERE id = :id AND pull_key = :key AND state IN ('pulled', 'failed')
  RETURNING queue_name AS queueName, created_at AS createdAt`;

/**
 * Prepares the queue's statements once on the app's connection, so that no request builds or
 * prepares SQL.
 *
 * @example
 * const queue = createSubmissionQueue(db, { lockMs: 300_000, maxFailures: 0 });
 * const pull = queue.pull('test-queue', Date.now(), newPullKey());
 */
export function createSubmissionQueue(db: ClientDb, settings: QueueSettings): SubmissionQueue {
  const client = db.$client;
  const lengthRow = client.prepare<
    [{ queue: string; expired: number }],
    { found: number; length: number }
  >(LENGTH_SQL);
  const queueNames = client.prepare<[], { name: string }>('SELECT name FROM queues ORDER BY name');
  const queueFound = client.prepare<[string], { found: number }>(
    'SELECT 1 AS found FROM queues WHERE name = ?',
  );
  const nextRow = client.prepare<[{ queue: string; expired: number }], Candidate>(NEXT_SQL);
  const markFailed = client.prepare<[{ id: number; failures: number }]>(
    "UPDATE submissions SET state = 'failed', failure_count = :failures WHERE id = :id",
  );
  const markPulled =
    client.prepare<[{ id: number; key: string; now: number; failures: number }]>(MARK_PULLED_SQL);
  const grade = client.prepare<
    [{ id: number; key: string; result: string; now: number }],
    { queueName: string; createdAt: number }
  >(GRADE_SQL);
  const gradeState = client.prepare<[number], { pullKey: string | null; state: string }>(
    'SELECT pull_key AS pullKey, state FROM submissions WHERE id = ?',
  );

  const length = (queue: string, now: number) => {
    const row = lengthRow.get({ queue, expired: now - settings.lockMs });
    return row && row.found === 1 ? row.length : null;
  };

  const pull = client.transaction((queue: string, now: number, key: string): PullOutcome => {
    const expired = now - settings.lockMs;
    for (;;) {
      const next = nextRow.get({ queue, expired });
      if (!next) {
        // A submission names an existing queue (foreign key), so only an empty result asks.
        return queueFound.get(queue) ? { kind: 'empty' } : { kind: 'unknown-queue' };
      }
      const failures = next.failureCount + (next.state === 'pulled' ? 1 : 0);
      if (settings.maxFailures > 0 && failures >= settings.maxFailures) {
        markFailed.run({ id: next.id, failures });
        continue;
      }
      markPulled.run({ id: next.id, key, now, failures });
      return { kind: 'pulled', id: next.id, key, body: next.body };
    }
  });

  const putResult = client.transaction((input: PutInput): PutOutcome => {
    const graded = grade.get({
      id: input.id,
      key: input.key,
      result: JSON.stringify(input.result),
      now: input.now,
    });
    if (graded) {
      return {
        kind: 'accepted',
        queueName: graded.queueName,
        latencyMs: input.now - graded.createdAt,
      };
    }
    // Nothing changed: say why, in the order a grader can act on.
    const row = gradeState.get(input.id);
    if (!row) return { kind: 'unknown' };
    if (row.pullKey !== input.key) return { kind: 'stale-key' };
    if (row.state === 'graded') return { kind: 'repeat' };
    return { kind: 'conflict' };
  });

  return {
    settings,
    length,
    lengths: (now) =>
      queueNames.all().map(({ name }) => ({ queue: name, length: length(name, now) ?? 0 })),
    pull: (queue, now, key) => pull.immediate(queue, now, key),
    putResult: (input) => putResult.immediate(input),
  };
}

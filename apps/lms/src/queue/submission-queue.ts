import type { ClientDb } from '../db/client.ts';

/** Tunables of the queue: lock time and when a repeatedly abandoned submission fails. */
export interface QueueSettings {
  lockMs: number;
  /** Serves of an expired lock after which a submission is marked failed; 0 = never. */
  maxFailures: number;
}

/**
 * Results without a usable score after which a submission is failed, as edx-submissions'
 * `MAX_SCORE_UPDATE_RETRIES`.
 */
export const MAX_SCORE_FAILURES = 5;

/** What a pull found. An unknown queue is just empty, as upstream. */
export type PullOutcome =
  | { kind: 'empty' }
  | { kind: 'pulled'; id: number; key: string; body: string };

/** What a put_result did. */
export type PutOutcome =
  | { kind: 'accepted'; queueName: string; latencyMs: number }
  /** No usable score: the submission went back to the queue (`retry`) or failed. */
  | { kind: 'unscored'; state: 'retry' | 'failed' }
  | { kind: 'repeat' }
  | { kind: 'unknown' }
  | { kind: 'stale-key' }
  | { kind: 'conflict' };

/** What is stored of a grader's reply, and shown to the student. */
export interface StoredResult {
  /** null: missing or unusable, nothing is recorded (see {@link PutOutcome} `unscored`). */
  score: number | null;
  correct?: boolean;
  msg?: string;
}

/** A grader's result for a submission, with the key of the pull it answers. */
export interface PutInput {
  id: number;
  /** null when the grader's key was not a string: it matches nothing. */
  key: string | null;
  result: StoredResult;
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
   * Hands the servable submission of a queue with the oldest status time to one puller: a
   * pending or retry one gets `key` as its new pull key, an expired lock is served again with
   * its old key and pull time. Runs in an IMMEDIATE transaction: two pullers, even in two
   * processes, never get the same submission while its lock holds.
   */
  pull(queueName: string, now: number, key: string): PullOutcome;
  /**
   * Records a grader's result if `key` is the submission's current pull key. A repeat with the
   * key that graded it leaves the submission as it is; any other key is refused and changes
   * nothing. Each result answered with success, a repeat included, is counted in
   * `result_acceptances`.
   */
  putResult(input: PutInput): PutOutcome;
}

interface Candidate {
  id: number;
  body: string;
  state: 'pending' | 'retry' | 'pulled';
  pullKey: string | null;
  failureCount: number;
}

// Servable, as edx-submissions' get_submission: pending, retry, or pulled with the lock expired
// (`status_time < now - lock`, strictly). Three seeks on (queue_name, state, status_at): an OR
// over them would make SQLite sort every pending row of the queue on each pull.
const LENGTH_SQL = `
  SELECT EXISTS (SELECT 1 FROM queues WHERE name = :queue) AS found,
    (SELECT count(*) FROM submissions
      WHERE queue_name = :queue AND state IN ('pending', 'retry'))
    + (SELECT count(*) FROM submissions
        WHERE queue_name = :queue AND state = 'pulled' AND status_at < :expired) AS length`;

const CANDIDATE = `SELECT id, body, state, pull_key AS pullKey, failure_count AS failureCount,
  status_at FROM submissions WHERE queue_name = :queue`;

const NEXT_SQL = `
  SELECT id, body, state, pullKey, failureCount FROM (
    SELECT * FROM (${CANDIDATE} AND state = 'pending' ORDER BY status_at, id LIMIT 1)
    UNION ALL
    SELECT * FROM (${CANDIDATE} AND state = 'retry' ORDER BY status_at, id LIMIT 1)
    UNION ALL
    SELECT * FROM (${CANDIDATE} AND state = 'pulled' AND status_at < :expired
      ORDER BY status_at, id LIMIT 1))
  ORDER BY status_at, id LIMIT 1`;

const MARK_PULLED_SQL = `
  UPDATE submissions SET state = 'pulled', pull_key = :key, pulled_at = :now, status_at = :now,
    first_pulled_at = coalesce(first_pulled_at, :now), pull_count = pull_count + 1
  WHERE id = :id`;

// Upstream leaves the row alone; we only count the serve (and the expired lock).
const RESERVE_SQL = `
  UPDATE submissions SET pull_count = pull_count + 1, failure_count = :failures WHERE id = :id`;

// Only the current pull key of an ungraded submission grades it. Upstream too grades a retry
// one; a failed one it scores and then answers 500 (no failed -> retired), we just grade it.
const GRADE_SQL = `
  UPDATE submissions SET state = 'graded', result = :result, graded_at = :now, status_at = :now,
    result_posts = result_posts + 1
  WHERE id = :id AND pull_key = :key AND state IN ('pulled', 'retry', 'failed')
  RETURNING queue_name AS queueName, created_at AS createdAt`;

// Every result answered with success, a repeat included (which leaves the submission as it is):
// counted apart, so that a submission graded or posted twice shows from the LMS's side.
const COUNT_ACCEPTED_SQL = `
  INSERT INTO result_acceptances (submission_id, accepted, last_accepted_at) VALUES (:id, 1, :now)
  ON CONFLICT (submission_id) DO UPDATE SET accepted = accepted + 1, last_accepted_at = :now`;

// As upstream when set_score fails: pulled -> retry, or failed at MAX_SCORE_FAILURES.
const UNSCORED_SQL = `
  UPDATE submissions SET score_failures = score_failures + 1, status_at = :now,
    state = CASE WHEN score_failures + 1 >= ${MAX_SCORE_FAILURES} THEN 'failed' ELSE 'retry' END
  WHERE id = :id AND pull_key = :key AND state = 'pulled'
  RETURNING state`;

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
  const nextRow = client.prepare<[{ queue: string; expired: number }], Candidate>(NEXT_SQL);
  const markFailed = client.prepare<[{ id: number; failures: number; now: number }]>(
    "UPDATE submissions SET state = 'failed', failure_count = :failures, status_at = :now WHERE id = :id",
  );
  const markPulled = client.prepare<[{ id: number; key: string; now: number }]>(MARK_PULLED_SQL);
  const reserve = client.prepare<[{ id: number; failures: number }]>(RESERVE_SQL);
  const grade = client.prepare<
    [{ id: number; key: string; result: string; now: number }],
    { queueName: string; createdAt: number }
  >(GRADE_SQL);
  const countAccepted = client.prepare<[{ id: number; now: number }]>(COUNT_ACCEPTED_SQL);
  const unscored = client.prepare<
    [{ id: number; key: string; now: number }],
    { state: 'retry' | 'failed' }
  >(UNSCORED_SQL);
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
      if (!next) return { kind: 'empty' };
      if (next.state !== 'pulled' || next.pullKey === null) {
        markPulled.run({ id: next.id, key, now });
        return { kind: 'pulled', id: next.id, key, body: next.body };
      }
      // An expired lock, served as it is; each such serve counts toward XQUEUE_MAX_FAILURES.
      const failures = next.failureCount + 1;
      if (settings.maxFailures > 0 && failures >= settings.maxFailures) {
        markFailed.run({ id: next.id, failures, now });
        continue;
      }
      reserve.run({ id: next.id, failures });
      return { kind: 'pulled', id: next.id, key: next.pullKey, body: next.body };
    }
  });

  const explain = (input: PutInput): PutOutcome => {
    const row = gradeState.get(input.id);
    if (!row) return { kind: 'unknown' };
    if (row.pullKey === null || row.pullKey !== input.key) return { kind: 'stale-key' };
    if (row.state === 'graded') return { kind: 'repeat' };
    // A retry or failed submission keeps its state on a second result without a score.
    if (input.result.score === null && (row.state === 'retry' || row.state === 'failed')) {
      return { kind: 'unscored', state: row.state };
    }
    return { kind: 'conflict' };
  };

  const record = (input: PutInput): PutOutcome => {
    // Ids that cannot be a row (beyond 2^53, zero, negative) name no submission.
    if (!Number.isSafeInteger(input.id) || input.id < 1) return { kind: 'unknown' };
    if (input.key === null) return explain(input);
    const target = { id: input.id, key: input.key, now: input.now };
    if (input.result.score === null) {
      const row = unscored.get(target);
      return row ? { kind: 'unscored', state: row.state } : explain(input);
    }
    const graded = grade.get({ ...target, result: JSON.stringify(input.result) });
    if (!graded) return explain(input);
    return {
      kind: 'accepted',
      queueName: graded.queueName,
      latencyMs: input.now - graded.createdAt,
    };
  };

  const putResult = client.transaction((input: PutInput): PutOutcome => {
    const outcome = record(input);
    if (outcome.kind === 'accepted' || outcome.kind === 'repeat') {
      countAccepted.run({ id: input.id, now: input.now });
    }
    return outcome;
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

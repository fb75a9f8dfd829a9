import { type LocalLms, startLms } from '@storm-lab/harness';
import type { XQueueClient } from '@storm-lab/lms-client';
import { type Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrader, type Grader, parseHandler } from './graders.ts';
import { GRADE_JOB_OPTIONS, type GradeJobData, type GradeJobResult, toGradeJob } from './jobs.ts';
import { createMetrics, type WatcherMetrics } from './metrics.ts';
import { createGradeProcessor } from './processor.ts';
import { counterValue, createTestClient } from './testing/clients.ts';
import { loginStudent, SERVICE_PASSWORD, type Student } from './testing/lab.ts';
import { testRedis } from './testing/redis.ts';

const QUEUE = 'pq';

function grader(
  name: string,
  kwargs: Record<string, unknown> = {},
  randoms: number[] = [],
): Grader {
  const spec = parseHandler(name, kwargs);
  if (!spec.ok) throw new Error(spec.error);
  return createGrader(spec.value, {
    sleep: async () => undefined,
    random: () => randoms.shift() ?? 0.99,
  });
}

describe('createGradeProcessor', () => {
  let lms: LocalLms;
  let redis: Awaited<ReturnType<typeof testRedis>> | undefined;
  let connection: Redis;
  let student: Student;
  let client: XQueueClient;
  let metrics: WatcherMetrics;

  beforeAll(async () => {
    lms = await startLms({
      env: { PASSWORD_HASH_ITERATIONS: '1000', XQUEUE_LOCK_SECONDS: '1.5' },
      seed: [
        '--queues',
        QUEUE,
        '--students',
        '1',
        '--service-password',
        SERVICE_PASSWORD,
        '--student-password',
        'student-test-pass',
      ],
    });
    redis = await testRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    student = await loginStudent(lms.url, 'student1');
  }, 60_000);

  afterAll(async () => {
    await connection?.quit();
    await redis?.stop();
    await lms?.stop();
  });

  /** Submits an answer and pulls it with a fresh client: a real job, as a puller builds it. */
  async function pullJob(response: string) {
    metrics = createMetrics('p');
    client = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics, mode: 'hardened' });
    const id = await student.submit(QUEUE, `${QUEUE}-p1`, response);
    const pulled = await client.getSubmission();
    if (pulled.kind !== 'submission') throw new Error(`expected a submission, got ${pulled.kind}`);
    const job = toGradeJob(pulled.content, {
      queue: QUEUE,
      pulledAtMs: Date.now(),
      pulledBy: 'test',
      handlers: [],
      serverUrl: lms.url,
      postResult: true,
    });
    if (!job.ok) throw new Error(job.error);
    return { id, jobId: job.value.jobId, data: job.value.data };
  }

  function processorWith(grade: Grader) {
    return createGradeProcessor({
      graderFor: () => grade,
      clientFor: () => client,
      metrics,
      logger: pino({ level: 'silent' }),
      now: Date.now,
    });
  }

  /** A processor whose event lines (`logEvent`, printed at any level) are kept as objects. */
  function loggedProcessor(grade: Grader, options: { gradeEveryJobTwice?: boolean } = {}) {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'silent' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const processor = createGradeProcessor({
      graderFor: () => grade,
      clientFor: () => client,
      metrics,
      logger,
      now: Date.now,
      ...options,
    });
    const events = () =>
      lines
        .filter((line) => typeof line.event === 'string' && line.event !== 'result-accepted')
        .map(({ event, queue, submissionId, jobId }) => [event, queue, submissionId, jobId]);
    return { processor, events };
  }

  const asJob = (data: GradeJobData) =>
    ({ id: 'j', data, attemptsMade: 0 }) as Job<GradeJobData, GradeJobResult>;

  it('grades and posts through the already logged-in client, adding no login', async () => {
    const { id, data } = await pullJob(`answer-${QUEUE}-p1`);
    const result = await processorWith(grader('exact-answer'))(asJob(data));
    expect(result).toMatchObject({ outcome: 'correct', score: 1, result: { correct: true } });
    expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true, score: 1 });
    expect(await counterValue(metrics, 'logins')).toBe(1);
    expect(await counterValue(metrics, 'graded', { queue: QUEUE, outcome: 'correct' })).toBe(1);
  });

  it('grades without posting when the connection that pulled posts itself', async () => {
    const { id, data } = await pullJob(`answer-${QUEUE}-p1`);
    const result = await processorWith(grader('exact-answer'))(
      asJob({ ...data, postResult: false }),
    );
    expect(result).toMatchObject({ outcome: 'correct', result: { correct: true, score: 1 } });
    expect(await student.get(id)).toMatchObject({ state: 'pulled' });
    expect(await counterValue(metrics, 'graded')).toBe(0);
  });

  it('posts a failure result for a malformed submission, and does not retry it', async () => {
    const { id, data } = await pullJob('x');
    const broken = JSON.stringify({ ...JSON.parse(data.content), xqueue_body: 'not json' });
    const run = processorWith(grader('exact-answer'))(asJob({ ...data, content: broken }));
    await expect(run).resolves.toMatchObject({ outcome: 'malformed', score: 0 });
    const view = await student.get(id);
    expect(view).toMatchObject({ state: 'graded', correct: false, score: 0 });
    expect(view.msg).toContain('could not be graded: xqueue_body is not valid JSON');
    expect(await counterValue(metrics, 'graded', { outcome: 'malformed' })).toBe(1);
  });

  it('gives up a result the LMS refuses with 403 "Incorrect key", without retry', async () => {
    const { data } = await pullJob('late');
    const forged = JSON.stringify({ ...JSON.parse(data.xqueueHeader), submission_key: 'stale' });
    const run = processorWith(grader('exact-answer'))(asJob({ ...data, xqueueHeader: forged }));
    await expect(run).rejects.toThrow(UnrecoverableError);
    expect(await counterValue(metrics, 'putResultFailures', { reason: 'stale-key' })).toBe(1);
  });

  it('logs where each grading starts, naming the job and the submission', async () => {
    const { id, jobId, data } = await pullJob(`answer-${QUEUE}-p1`);
    const { processor, events } = loggedProcessor(grader('exact-answer'));
    await processor({ ...asJob(data), id: jobId } as Job<GradeJobData, GradeJobResult>);
    expect(events()).toEqual([['grading-started', QUEUE, id, jobId]]);
  });

  // The control that the graded-twice counts must catch (fleet.test.ts, the chaos run).
  it('grades and posts every job twice with the test-only switch, and logs both gradings', async () => {
    const { id, data } = await pullJob(`answer-${QUEUE}-p1`);
    const { processor, events } = loggedProcessor(grader('exact-answer'), {
      gradeEveryJobTwice: true,
    });
    await processor(asJob(data));
    expect(events()).toEqual([
      ['grading-started', QUEUE, id, 'j'],
      ['grading-started', QUEUE, id, 'j'],
    ]);
    // The LMS answers the repeat with success: both posts count as graded here.
    expect(await counterValue(metrics, 'graded', { queue: QUEUE, outcome: 'correct' })).toBe(2);
  });

  it('retries a transient grader failure through BullMQ with backoff, then grades', async () => {
    const { id, jobId, data } = await pullJob(`answer-${QUEUE}-p1`);
    const prefix = `proc-${process.pid}-${Date.now()}`;
    const queue = new Queue<GradeJobData, GradeJobResult>('grade-pq', { connection, prefix });
    const eventsConnection = connection.duplicate();
    const events = new QueueEvents('grade-pq', { connection: eventsConnection, prefix });
    // random() draws: 0.99 jitter, 0.0 < failure_rate fails; then 0.99, 0.99 passes.
    const flaky = grader('slow-flaky', { failure_rate: 0.5 }, [0.99, 0, 0.99, 0.99]);
    const worker = new Worker<GradeJobData, GradeJobResult>('grade-pq', processorWith(flaky), {
      connection,
      prefix,
    });
    worker.on('error', () => undefined);
    try {
      await events.waitUntilReady();
      const job = await queue.add('grade', data, { ...GRADE_JOB_OPTIONS, jobId });
      expect(await job.waitUntilFinished(events, 10_000)).toMatchObject({
        outcome: 'correct',
        score: 1,
      });
      expect((await queue.getJob(jobId))?.attemptsMade).toBe(2);
      expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true });
    } finally {
      await worker.close();
      await events.close();
      await eventsConnection.quit();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});

import { waitFor } from '@storm-lab/harness';
import { encodeSubmission } from '@storm-lab/xqueue-protocol';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addGradeJob, type GradeJobData, gradeJobId, toGradeJob } from './jobs.ts';
import { testRedis } from './testing/redis.ts';

function createTestContent(id: number, key: string): string {
  return encodeSubmission({
    header: { submission_id: id, submission_key: key },
    body: { student_response: '1', grader_payload: '{"answer":"1"}', student_info: '{}' },
    files: {},
  });
}

const meta = {
  queue: 'a',
  pulledAtMs: 1,
  pulledBy: 'r-1',
  handlers: [],
  serverUrl: 'http://lms',
  postResult: false,
};

describe('gradeJobId', () => {
  it('is stable per pull and contains no ":" even when the key does', () => {
    expect(gradeJobId(7, 'abc')).toBe('sub-7-abc');
    expect(gradeJobId(7, 'a:b')).not.toContain(':');
    expect(gradeJobId(7, 'a:b')).not.toBe(gradeJobId(7, 'a_b'));
  });
});

describe('toGradeJob', () => {
  it('derives the job id from submission id and pull key and keeps the raw header', () => {
    const content = createTestContent(7, 'k1');
    const job = toGradeJob(content, meta);
    expect(job.ok && job.value.jobId).toBe('sub-7-k1');
    expect(job.ok && JSON.parse(job.value.data.xqueueHeader)).toEqual({
      submission_id: 7,
      submission_key: 'k1',
    });
  });

  it('keeps a submission whose body is broken, so it can be answered with a failure', () => {
    const content = JSON.stringify({
      xqueue_header: JSON.stringify({ submission_id: 8, submission_key: 'k' }),
      xqueue_body: 'not json',
      xqueue_files: '{}',
    });
    expect(toGradeJob(content, meta).ok).toBe(true);
  });

  it('refuses content without a usable header', () => {
    expect(toGradeJob('nope', meta)).toEqual({
      ok: false,
      error: 'content is not valid JSON',
    });
    const noKey = JSON.stringify({
      xqueue_header: '{"submission_id": 1}',
      xqueue_body: '',
      xqueue_files: '',
    });
    expect(toGradeJob(noKey, meta).ok).toBe(false);
  });
});

describe('grading jobs in BullMQ', () => {
  let redis: Awaited<ReturnType<typeof testRedis>> | undefined;
  let connection: Redis;
  let queue: Queue;

  beforeAll(async () => {
    redis = await testRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue('grade-a', { connection, prefix: `test-jobs-${process.pid}-${Date.now()}` });
  });

  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await connection.quit();
    await redis?.stop();
  });

  const data = (id: number, key: string): GradeJobData => {
    const job = toGradeJob(createTestContent(id, key), meta);
    if (!job.ok) throw new Error(job.error);
    return job.value.data;
  };

  it('adds one job per pull: the same pull again finds it, another pull is another job', async () => {
    const first = await addGradeJob(queue, gradeJobId(9, 'k'), data(9, 'k'));
    const again = await addGradeJob(queue, gradeJobId(9, 'k'), data(9, 'k'));
    const other = await addGradeJob(queue, gradeJobId(10, 'k'), data(10, 'k'));
    expect([first.fresh, again.fresh, other.fresh]).toEqual([true, false, true]);
    expect(again.job.id).toBe(first.job.id);
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.map((job) => job.id).sort()).toEqual(['sub-10-k', 'sub-9-k']);
  });

  it('retries the failed job of a pull that comes back', async () => {
    const { job } = await addGradeJob(queue, gradeJobId(11, 'k'), data(11, 'k'));
    const worker = new Worker(
      queue.name,
      async () => {
        throw new UnrecoverableError('grader broke');
      },
      { connection, prefix: queue.opts.prefix },
    );
    worker.on('error', () => undefined);
    await waitFor(async () => ((await queue.getJob(job.id!))?.isFailed() ? true : undefined), {
      what: 'the job to fail',
    });
    await worker.close();
    const back = await addGradeJob(queue, gradeJobId(11, 'k'), data(11, 'k'));
    expect(back.fresh).toBe(false);
    expect(await (await queue.getJob(job.id!))?.getState()).toBe('waiting');
  });
});

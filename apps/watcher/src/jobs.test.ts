import { encodeSubmission } from '@storm-lab/xqueue-protocol';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRADE_JOB_OPTIONS, gradeJobId } from './jobs.ts';
import { toGradeJob } from './puller.ts';
import { testRedis } from './testing/redis.ts';

function createTestContent(id: number, key: string): string {
  return encodeSubmission({
    header: { submission_id: id, submission_key: key },
    body: { student_response: '1', grader_payload: '{"answer":"1"}', student_info: '{}' },
    files: {},
  });
}

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
    const job = toGradeJob(content, { queue: 'a', pulledAtMs: 1, pulledBy: 'r-1' });
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
    expect(toGradeJob(content, { queue: 'a', pulledAtMs: 1, pulledBy: 'r' }).ok).toBe(true);
  });

  it('refuses content without a usable header', () => {
    expect(toGradeJob('nope', { queue: 'a', pulledAtMs: 1, pulledBy: 'r' })).toEqual({
      ok: false,
      error: 'content is not valid JSON',
    });
    const noKey = JSON.stringify({
      xqueue_header: '{"submission_id": 1}',
      xqueue_body: '',
      xqueue_files: '',
    });
    expect(toGradeJob(noKey, { queue: 'a', pulledAtMs: 1, pulledBy: 'r' }).ok).toBe(false);
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

  it('adds a duplicate of the same pull once, and a re-served pull (new key) again', async () => {
    const add = (key: string) => {
      const job = toGradeJob(createTestContent(9, key), {
        queue: 'a',
        pulledAtMs: 1,
        pulledBy: 'r',
      });
      if (!job.ok) throw new Error(job.error);
      return queue.add('grade', job.value.data, { ...GRADE_JOB_OPTIONS, jobId: job.value.jobId });
    };
    await add('first');
    await add('first');
    await add('second');
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.map((job) => job.id).sort()).toEqual(['sub-9-first', 'sub-9-second']);
  });
});

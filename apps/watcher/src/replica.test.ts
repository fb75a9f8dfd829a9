import { type LocalLms, startLms, waitFor } from '@storm-lab/harness';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gradeQueueName } from './jobs.ts';
import { createMetrics } from './metrics.ts';
import { startReplica } from './replica.ts';
import { counterValue, createTestConfig } from './testing/clients.ts';
import { loginStudent, SERVICE_PASSWORD, SERVICE_USERNAME } from './testing/lab.ts';
import { testRedis } from './testing/redis.ts';

const QUEUE = 'rq';

describe('startReplica', () => {
  let lms: LocalLms;
  let redis: Awaited<ReturnType<typeof testRedis>> | undefined;
  let redisUrl: string;

  beforeAll(async () => {
    lms = await startLms({
      env: { PASSWORD_HASH_ITERATIONS: '1000', SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME },
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
    redisUrl = redis.url;
  }, 60_000);

  afterAll(async () => {
    await redis?.stop();
    await lms?.stop();
  });

  const config = (latencyMs: number) =>
    createTestConfig({ serverUrl: lms.url, queue: QUEUE, connections: 2, latencyMs });

  it('on stop, finishes the in-flight job before closing, with one login per connection', async () => {
    const metrics = createMetrics('replica-test');
    const queuePrefix = `replica-${process.pid}-${Date.now()}`;
    const probe = new Queue(gradeQueueName(QUEUE), {
      connection: { url: redisUrl },
      prefix: queuePrefix,
    });
    const replica = await startReplica({
      config: config(1_500),
      replicaId: 'replica-test',
      redisUrl,
      queuePrefix,
      concurrency: 1,
      jobLockMs: 5_000,
      mode: 'current',
      sendInstanceId: false,
      metrics,
      logger: pino({ level: 'silent' }),
    });
    let stopped = false;
    try {
      const student = await loginStudent(lms.url, 'student1');
      const id = await student.submit(QUEUE, `${QUEUE}-p2`, `answer-${QUEUE}-p2`);
      await waitFor(async () => ((await probe.getActiveCount()) === 1 ? true : undefined), {
        what: 'the grading job to be active',
      });
      expect(await counterValue(metrics, 'graded')).toBe(0);
      await replica.stop();
      stopped = true;
      // The grader takes 1.5 s; stop() returned only after the result was accepted.
      expect(await counterValue(metrics, 'graded', { outcome: 'correct' })).toBe(1);
      expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true, score: 1 });
      expect(await counterValue(metrics, 'logins')).toBe(2);
    } finally {
      if (!stopped) await replica.stop();
      await probe.obliterate({ force: true });
      await probe.close();
    }
  });
});

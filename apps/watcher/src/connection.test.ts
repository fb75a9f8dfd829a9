import {
  type LocalLms,
  startLms,
  startWatchers,
  sumMetric,
  type WatcherFleet,
  waitFor,
} from '@storm-lab/harness';
import type { XQueueClient } from '@storm-lab/lms-client';
import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectionOptions, processOne } from './connection.ts';
import { createGrader } from './graders.ts';
import { addGradeJob, type GradeJobData, type GradeJobResult, gradeQueueName } from './jobs.ts';
import { createMetrics } from './metrics.ts';
import { createGradeProcessor } from './processor.ts';
import { startReplica } from './replica.ts';
import { counterValue, createTestClient, createTestConfig } from './testing/clients.ts';
import { loginStudent, SERVICE_PASSWORD, SERVICE_USERNAME, scrape } from './testing/lab.ts';
import { testRedis } from './testing/redis.ts';

const QUEUE = 'cq';
const seedArgs = (students: number) => [
  ...['--queues', QUEUE, '--students', String(students)],
  ...['--service-password', SERVICE_PASSWORD, '--student-password', 'student-test-pass'],
];
const silent = pino({ level: 'silent' });
const EXACT = { name: 'exact-answer', kwargs: { trim: true, case_sensitive: true } } as const;

describe('a replica whose logins outlast REQUESTS_TIMEOUT', () => {
  let lms: LocalLms;
  let redis: Awaited<ReturnType<typeof testRedis>>;
  let fleet: WatcherFleet | undefined;
  beforeAll(async () => {
    // 4,000,000 PBKDF2 iterations: a login takes several times the 100 ms timeout below.
    lms = await startLms({
      env: { PASSWORD_HASH_ITERATIONS: '4000000', SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME },
      seed: seedArgs(0),
    });
    redis = await testRedis();
  }, 90_000);
  afterEach(async () => {
    await fleet?.stopAll();
    fleet = undefined;
  });
  afterAll(async () => {
    await redis?.stop();
    await lms?.stop();
  });

  const start = (mode: string) =>
    startWatchers({
      replicas: 1,
      env: {
        REDIS_URL: redis.url,
        LMS_URL: lms.url,
        XQUEUE_USERNAME: SERVICE_USERNAME,
        XQUEUE_PASSWORD: SERVICE_PASSWORD,
        WATCHER_QUEUES: QUEUE,
        WATCHER_CONNECTIONS: '2',
        WATCHER_MODE: mode,
        WATCHER_QUEUE_PREFIX: `conn-${process.pid}-${mode}-${Date.now()}`,
        XQWATCHER_REQUESTS_TIMEOUT: '0.1',
        XQWATCHER_POLL_TIME: '0.5',
        LOG_LEVEL: 'silent',
      },
    });

  // As xqueue-watcher's XQueueClient.run (a timeout in the first login escapes and ends the
  // thread) and Manager.wait (a dead client stops every client and ends the process).
  // How soon it exits (when the manager's round comes to the dead connection, up to
  // connections x POLL_TIME later) is manager.test.ts's, on a virtual clock; here the real
  // process shows that it does.
  it('ends the connection, and the replica stops every connection and exits non-zero', async () => {
    fleet = await start('current');
    const replica = fleet.replicas[0]!;
    const lines = () => replica.output().split('\n');
    await waitFor(
      () => (lines().some((line) => line.includes('"event":"connection-died"')) ? true : undefined),
      { timeoutMs: 10_000, what: 'a connection to die' },
    );
    const { code } = await replica.exited;
    expect(code).toBe(1);
    expect(
      lines().filter((line) => line.includes('"event":"login-timeout"')).length,
    ).toBeGreaterThan(0);
    // The exit is the manager's answer to the death: it comes after it.
    const died = lines().findIndex((line) => line.includes('"event":"connection-died"'));
    const exit = lines().findIndex((line) => line.includes('"event":"replica-exit"'));
    expect(exit).toBeGreaterThan(died);
  }, 30_000);

  it('hardened: waits for the slow login instead, and keeps running', async () => {
    fleet = await start('hardened');
    const url = fleet.metricsUrls[0]!;
    await waitFor(
      async () => (sumMetric(await scrape(url), 'watcher_logins_total') === 2 ? true : undefined),
      { timeoutMs: 20_000, what: 'both connections to log in' },
    );
    const text = await scrape(url);
    expect(sumMetric(text, 'watcher_connection_deaths_total')).toBe(0);
    expect(sumMetric(text, 'watcher_connections_alive')).toBe(2);
    expect(fleet.replicas[0]!.child.exitCode).toBeNull();
  }, 30_000);
});

describe('the serial connection loop against a real LMS and Redis', () => {
  let lms: LocalLms;
  let redis: Awaited<ReturnType<typeof testRedis>>;
  beforeAll(async () => {
    lms = await startLms({
      env: {
        PASSWORD_HASH_ITERATIONS: '1000',
        SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME,
        XQUEUE_LOCK_SECONDS: '0.5',
      },
      seed: seedArgs(2),
    });
    redis = await testRedis();
  }, 60_000);
  afterAll(async () => {
    await redis?.stop();
    await lms?.stop();
  });

  // As xqueue-watcher's XQueueClient.process_one: pull, run the handlers, put_result on the
  // same session, and only then the next pull.
  it('never pulls while grading and posts each result on the session that pulled it', async () => {
    const metrics = createMetrics('serial');
    const queuePrefix = `serial-${process.pid}-${Date.now()}`;
    const replica = await startReplica({
      config: createTestConfig({
        serverUrl: lms.url,
        queue: QUEUE,
        connections: 2,
        latencyMs: 150,
        pollIntervalMs: 20,
      }),
      replicaId: 'serial',
      redisUrl: redis.url,
      queuePrefix,
      concurrency: 4,
      jobLockMs: 5_000,
      mode: 'current',
      sendInstanceId: false,
      metrics,
      logger: silent,
    });
    // Each call of each client, in order, with the submission it concerned.
    const calls: { client: number; call: 'pull' | 'put'; at: number; id?: number }[] = [];
    const clients = replica.clients.get(QUEUE) ?? [];
    clients.forEach((client, index) => {
      record(client, index, calls);
    });
    const probe = new Queue<GradeJobData, GradeJobResult>(gradeQueueName(QUEUE), {
      connection: { url: redis.url },
      prefix: queuePrefix,
    });
    try {
      const student = await loginStudent(lms.url, 'student1');
      const ids: number[] = [];
      for (let n = 0; n < 6; n += 1) ids.push(await student.submit(QUEUE, `${QUEUE}-p1`, 'x'));
      await waitFor(
        async () => ((await counterValue(metrics, 'graded')) === ids.length ? true : undefined),
        { timeoutMs: 20_000, what: 'all six graded' },
      );
      const jobs = await probe.getCompleted();
      expect(jobs).toHaveLength(ids.length);
      // The wrappers saw the loop's own clients: a pull and a put of every graded submission.
      expect(clients).toHaveLength(2);
      expect(calls.filter((c) => c.call === 'put').map((c) => c.id)).toHaveLength(ids.length);
      for (const job of jobs) {
        const id = job.data.submissionId;
        const pulledBy = calls.find((c) => c.call === 'pull' && c.id === id)?.client;
        const put = calls.find((c) => c.call === 'put' && c.id === id);
        expect(pulledBy).toBeDefined();
        expect(put?.client).toBe(pulledBy);
        // While its job was graded, the connection that pulled it made no other request.
        const during = calls.filter(
          (c) => c.client === pulledBy && c.at > job.processedOn! && c.at < put!.at,
        );
        expect(during).toEqual([]);
      }
      expect(
        sumMetric(await scrape(`${lms.url}/metrics`), 'lms_logins_total', {
          account: SERVICE_USERNAME,
        }),
      ).toBe(2);
    } finally {
      await replica.stop();
      await probe.obliterate({ force: true });
      await probe.close();
    }
  }, 30_000);

  // As edx-submissions' XQueueViewSet.get_submission (an expired pull is served again untouched)
  // meeting xqueue-watcher's process_one: the finished job's result is posted, not graded again.
  it('posts the finished job of a re-served submission instead of grading it twice', async () => {
    const queuePrefix = `reserve-${process.pid}-${Date.now()}`;
    const connection = { url: redis.url };
    let gradings = 0;
    const grader = createGrader(EXACT, { sleep: async () => undefined, random: Math.random });
    const metrics = createMetrics('reserve');
    const processor = createGradeProcessor({
      graderFor: () => async (submission) => {
        gradings += 1;
        return grader(submission);
      },
      clientFor: () => undefined,
      metrics,
      logger: silent,
      now: Date.now,
    });
    const name = gradeQueueName(QUEUE);
    const queue = new Queue<GradeJobData, GradeJobResult>(name, {
      connection,
      prefix: queuePrefix,
    });
    const worker = new Worker<GradeJobData, GradeJobResult>(name, processor, {
      connection,
      prefix: queuePrefix,
    });
    const events = new QueueEvents(name, { connection, prefix: queuePrefix });
    const grade = async (jobId: string, data: GradeJobData) => {
      const { job } = await addGradeJob(queue, jobId, data);
      return (job as Job<GradeJobData, GradeJobResult>).waitUntilFinished(events, 10_000);
    };
    try {
      const student = await loginStudent(lms.url, 'student2');
      const id = await student.submit(QUEUE, `${QUEUE}-p2`, `answer-${QUEUE}-p2`);
      const first = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
      const second = createTestClient({ serverUrl: lms.url, queue: QUEUE, metrics });
      const pulls: string[] = [];
      for (const client of [first, second]) {
        const pull = client.getSubmission.bind(client);
        client.getSubmission = async () => {
          const outcome = await pull();
          if (outcome.kind === 'submission') pulls.push(outcome.content);
          return outcome;
        };
      }
      const options = (client: XQueueClient): ConnectionOptions => ({
        client,
        grade,
        // The processor above grades with its own grader; an empty list would mean no handler.
        jobMeta: { handlers: [EXACT], serverUrl: lms.url, queue: QUEUE, pulledBy: 'test' },
        pollIntervalMs: 20,
        loginPollIntervalMs: 200,
        sleep: async () => undefined,
        now: Date.now,
        metrics,
        logger: silent,
        signal: new AbortController().signal,
      });
      // The first connection grades through its job, then loses its result (upstream: the
      // thread or the replica died before put_result).
      const dropped = {
        ...options(first),
        client: Object.assign(Object.create(first), {
          putResult: async () => ({
            kind: 'rejected',
            reason: 'lost',
            retry: false,
            message: 'lost',
          }),
        }) as XQueueClient,
      };
      expect(await processOne(dropped)).toBe(false);
      expect(gradings).toBe(1);
      // After the LMS lock (0.5 s) another connection gets the same submission, same key.
      await waitFor(async () => ((await processOne(options(second))) ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the submission to be served again',
      });
      expect(pulls).toHaveLength(2);
      expect(pulls[1]).toBe(pulls[0]);
      expect(gradings).toBe(1);
      expect(await student.get(id)).toMatchObject({ state: 'graded', correct: true, score: 1 });
    } finally {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  }, 30_000);
});

/** Wraps a client's pull and put so each call is recorded with the submission it concerned. */
function record(
  client: XQueueClient,
  index: number,
  calls: { client: number; call: 'pull' | 'put'; at: number; id?: number }[],
) {
  const pull = client.getSubmission.bind(client);
  const put = client.putResult.bind(client);
  client.getSubmission = async () => {
    const at = Date.now();
    const outcome = await pull();
    const id =
      outcome.kind === 'submission'
        ? (JSON.parse(JSON.parse(outcome.content).xqueue_header) as { submission_id: number })
            .submission_id
        : undefined;
    calls.push({ client: index, call: 'pull', at, id });
    return outcome;
  };
  client.putResult = async (header, result) => {
    const at = Date.now();
    calls.push({
      client: index,
      call: 'put',
      at,
      id: (JSON.parse(header) as { submission_id: number }).submission_id,
    });
    return put(header, result);
  };
}

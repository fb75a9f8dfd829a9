import { sumMetric, type WatcherEventLine, waitFor } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Lab,
  SERVICE_USERNAME,
  scrape,
  startLab,
  submitMany,
  waitAllGraded,
} from './testing/lab.ts';

const QUEUES = ['fa', 'fb'];
const REPLICAS = 3;
const CONNECTIONS = 2;
const LOGINS_HEALTHY = REPLICAS * QUEUES.length * CONNECTIONS;

// Queue fb grades with the test-report handler: a right answer plus an extra token scores 0.99.
const CONF_D = {
  'fa.json': { fa: { HANDLERS: [{ HANDLER: 'exact-answer' }] } },
  'fb.json': { fb: { CONNECTIONS: 1, HANDLERS: [{ HANDLER: 'test-report' }] } },
};
const scoreOf = (queue: string, correct: boolean) => (correct ? 1 : queue === 'fb' ? 0.99 : 0);

let lab: Lab | undefined;
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
});

describe('watcher fleet with the service account exempt', () => {
  it('grades 50 submissions right with exactly one login per connection and no 403', async () => {
    lab = await startLab({
      queues: QUEUES,
      replicas: REPLICAS,
      connections: CONNECTIONS,
      lmsEnv: { SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME },
      confD: CONF_D,
    });
    const expected = await submitMany(lab, 50, QUEUES, scoreOf);
    const views = await waitAllGraded(expected, 30_000);
    expect(views.map((view) => [view.correct, view.score])).toEqual(
      expected.map((one) => [one.correct, one.score]),
    );
    expect(views.find((view) => view.score === 0.99)?.msg).toContain('<div class="test">');

    const lms = await lab.lmsMetrics();
    expect(sumMetric(lms, 'lms_logins_total', { account: SERVICE_USERNAME })).toBe(LOGINS_HEALTHY);
    expect(sumMetric(lms, 'lms_http_responses_total', { status: '403' })).toBe(0);
    expect(sumMetric(lms, 'lms_sessions_evicted_total')).toBe(0);
    expect(sumMetric(lms, 'lms_submissions_graded_total')).toBe(50);

    const watchers = await Promise.all(lab.fleet.metricsUrls.map(scrape));
    const total = (name: string, labels?: Record<string, string>) =>
      watchers.reduce((sum, text) => sum + sumMetric(text, name, labels), 0);
    expect(total('watcher_logins_total')).toBe(LOGINS_HEALTHY);
    expect(total('watcher_graded_total')).toBe(50);
    expect(total('watcher_auth_failures_total')).toBe(0);
    expect(total('watcher_job_latency_seconds_count')).toBe(50);
  }, 90_000);

  it('loses no submission and grades none twice when a replica is SIGKILLed mid-run', async () => {
    const posts: AcceptedPost[] = [];
    lab = await startLab({
      queues: QUEUES,
      replicas: REPLICAS,
      connections: CONNECTIONS,
      // A short LMS lock re-serves what the dead replica pulled but never enqueued.
      lmsEnv: { SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME, XQUEUE_LOCK_SECONDS: '4' },
      // Slow grading, one job per queue per replica: the victim always holds jobs when killed.
      watcherEnv: { WATCHER_CONCURRENCY: '1' },
      confD: {
        'fa.json': { fa: { HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 400 } }] } },
        'fb.json': { fb: { HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 400 } }] } },
      },
      onEvent: (line) => {
        const post = acceptedPost(line);
        if (post) posts.push(post);
      },
    });
    const current = lab;
    const expected = await submitMany(current, 50, QUEUES);
    const victim = current.fleet.metricsUrls[0]!;
    await waitForGradedOn(victim, 1);
    await current.fleet.kill(0, 'SIGKILL');
    // The kill must land mid-run, or the test proves nothing.
    expect(sumMetric(await current.lmsMetrics(), 'lms_submissions_graded_total')).toBeLessThan(35);

    const views = await waitAllGraded(expected, 60_000);
    expect(views.map((view) => view.correct)).toEqual(expected.map((one) => one.correct));
    const lms = await current.lmsMetrics();
    expect(sumMetric(lms, 'lms_submissions_graded_total')).toBe(50);
    // The LMS counts a submission once however often it is posted (a repeat is a no-op 200), so
    // count the posts it accepted where they are made.
    expect(gradedTwice(posts), 'submissions graded twice').toEqual([]);
    // The victim may have died between a post and its event line, one per connection at most.
    expect(new Set(posts.map((post) => post.submissionId)).size).toBeGreaterThanOrEqual(
      50 - QUEUES.length * CONNECTIONS,
    );

    // The replaced replica comes back under the same id and logs its connections in again.
    await current.fleet.restart(0);
    const restarted = await waitFor(
      async () => {
        const text = await scrape(current.fleet.metricsUrls[0]!);
        return sumMetric(text, 'watcher_logins_total') === QUEUES.length * CONNECTIONS
          ? text
          : undefined;
      },
      { timeoutMs: 20_000, what: 'the restarted replica to log in' },
    );
    expect(restarted).toContain(`replica="${current.fleet.replicaIds[0]}"`);
  }, 120_000);
});

async function waitForGradedOn(metricsUrl: string, count: number): Promise<void> {
  await waitFor(
    async () =>
      sumMetric(await scrape(metricsUrl), 'watcher_graded_total') >= count ? true : undefined,
    { timeoutMs: 20_000, what: `replica graded ${count}` },
  );
}

/** A put_result the LMS accepted, from a replica's `result-accepted` line. */
interface AcceptedPost {
  submissionId: number;
  jobId: string;
  /** The replica process and its connection that posted. */
  by: string;
}

/** The post a `result-accepted` line reports, or undefined for any other line. */
function acceptedPost({ event, pid, fields }: WatcherEventLine): AcceptedPost | undefined {
  const { submissionId, jobId, queue, connection } = fields;
  if (event !== 'result-accepted') return undefined;
  if (typeof submissionId !== 'number' || typeof jobId !== 'string') return undefined;
  return { submissionId, jobId, by: `${pid}/${String(queue)}/${String(connection)}` };
}

/**
 * Submissions graded by more than one job, or posted twice by one connection. Two connections
 * may both post a submission's one job: the LMS served it again, with the same key, when its
 * lock expired while the first waited on the job, and each connection answers what it was
 * served. But the LMS never serves a graded submission again, so one connection posts it once.
 */
function gradedTwice(posts: readonly AcceptedPost[]): number[] {
  const twice = new Set<number>();
  const jobsOf = new Map<number, Set<string>>();
  const postedBy = new Set<string>();
  for (const { submissionId, jobId, by } of posts) {
    const jobs = jobsOf.get(submissionId) ?? new Set<string>();
    jobsOf.set(submissionId, jobs.add(jobId));
    const poster = `${by} ${submissionId}`;
    if (jobs.size > 1 || postedBy.has(poster)) twice.add(submissionId);
    postedBy.add(poster);
  }
  return [...twice].sort((a, b) => a - b);
}

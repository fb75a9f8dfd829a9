import { sumMetric, type WatcherEventLine, waitFor } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Expected,
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
    const lines: WatcherEventLine[] = [];
    lab = await startLab({
      queues: QUEUES,
      replicas: REPLICAS,
      connections: CONNECTIONS,
      // A short LMS lock re-serves what the dead replica pulled but never enqueued.
      lmsEnv: { SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME, XQUEUE_LOCK_SECONDS: '4' },
      // Slow grading, one job per queue per replica: the victim always holds jobs when killed.
      watcherEnv: { WATCHER_CONCURRENCY: '1' },
      confD: SLOW_CONF_D,
      onEvent: (line) => lines.push(line),
    });
    const current = lab;
    const expected = await submitMany(current, 50, QUEUES);
    const victim = current.fleet.metricsUrls[0]!;
    await waitForGradedOn(victim, 1);
    const kill = await killReplica(current, 0);
    // The kill must land mid-run, or the test proves nothing.
    expect(sumMetric(await current.lmsMetrics(), 'lms_submissions_graded_total')).toBeLessThan(35);

    const views = await waitAllGraded(expected, 60_000);
    expect(views.map((view) => view.correct)).toEqual(expected.map((one) => one.correct));
    const lms = await current.lmsMetrics();
    expect(sumMetric(lms, 'lms_submissions_graded_total')).toBe(50);
    // The LMS's submission counters see a submission once however often it is graded, so
    // count the gradings where they happen, across replicas and the victim's incarnation.
    // A finish line may still be in a survivor's pipe when its student sees the result.
    const finished = () => {
      const found = countGradings(lines, [kill]);
      return found.unfinishedBy.every((pid) => pid === kill.pid) ? found : undefined;
    };
    const count =
      (await waitFor(finished, { timeoutMs: 5_000, what: 'finish lines' }).catch(
        () => undefined,
      )) ?? countGradings(lines, [kill]);
    expect(count.gradedTwice, 'submissions graded twice').toEqual([]);
    expect(count.graded, 'every submission has a grading line').toEqual(ids(expected));
    expect(
      count.unfinishedBy.filter((pid) => pid !== kill.pid),
      'a live process left a grading unfinished',
    ).toEqual([]);
    // Upstream's re-serve of an expired pull (same key, to every poll until a result lands)
    // lets several connections post one grading's result; each is accepted. That is not a
    // second grading, so it is allowed here; one connection posting one submission twice is
    // not (the LMS never serves a graded submission again).
    expect(postedTwiceByOneConnection(lines), 'posted twice by one connection').toEqual([]);

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

  // The control: a watcher that grades every job twice (a test-only switch) must be caught by
  // the count above, or that count proves nothing.
  it('counts every submission graded twice when the replicas grade each job twice', async () => {
    const lines: WatcherEventLine[] = [];
    lab = await startLab({
      queues: QUEUES,
      replicas: 2,
      connections: 1,
      lmsEnv: { SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE_USERNAME },
      watcherEnv: { WATCHER_TEST_GRADE_EVERY_JOB_TWICE: 'true' },
      confD: CONF_D,
      onEvent: (line) => lines.push(line),
    });
    const expected = await submitMany(lab, 10, QUEUES, scoreOf);
    await waitAllGraded(expected, 30_000);
    // The second grading of the last job may still be running when its result lands.
    const count = await waitFor(
      async () => {
        const found = countGradings(lines, []);
        return found.gradedTwice.length === expected.length ? found : undefined;
      },
      { timeoutMs: 10_000, what: 'every job graded twice' },
    ).catch(() => countGradings(lines, []));
    expect(count.gradedTwice, 'submissions graded twice').toEqual(ids(expected));
  }, 90_000);
});

const SLOW_CONF_D = {
  'fa.json': { fa: { HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 400 } }] } },
  'fb.json': { fb: { HANDLERS: [{ HANDLER: 'slow-flaky', KWARGS: { latency_ms: 400 } }] } },
};

const ids = (expected: readonly Expected[]) => expected.map((one) => one.id).sort((a, b) => a - b);

async function waitForGradedOn(metricsUrl: string, count: number): Promise<void> {
  await waitFor(
    async () =>
      sumMetric(await scrape(metricsUrl), 'watcher_graded_total') >= count ? true : undefined,
    { timeoutMs: 20_000, what: `replica graded ${count}` },
  );
}

/** A SIGKILL of replica `index`: its pid, and when the last line it printed had been read. */
interface Kill {
  pid: number;
  atMs: number;
}

async function killReplica(current: Lab, index: number): Promise<Kill> {
  const victim = current.fleet.replicas[index]!;
  const stdout = victim.child.stdout;
  const closed =
    !stdout || stdout.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => stdout.once('close', () => resolve()));
  await current.fleet.kill(index, 'SIGKILL');
  await closed;
  return { pid: victim.pid, atMs: Date.now() };
}

/** One grading: a `grading-started` line and the outcome of its `grading-finished`, if any. */
interface Grading {
  submissionId: number;
  pid: number;
  startedAtMs: number;
  outcome: string | null;
}

/**
 * Gradings per submission, from the replicas' `grading-started` and `grading-finished` lines
 * (the storm runner's `countGradings` applies the same rule). A second grading is excused only
 * when every earlier one failed (BullMQ retried it) or has no finish line (BullMQ never marked
 * its job done) because its process was SIGKILLed before the second started: redelivery of a
 * job the victim never finished.
 */
function countGradings(lines: readonly WatcherEventLine[], kills: readonly Kill[]) {
  const gradings: Grading[] = [];
  const open = new Map<string, Grading[]>();
  for (const { event, pid, atMs, fields } of lines) {
    const { submissionId, jobId, outcome } = fields;
    if (typeof submissionId !== 'number') continue;
    const key = `${pid} ${String(jobId)}`;
    if (event === 'grading-started') {
      const grading: Grading = { submissionId, pid, startedAtMs: atMs, outcome: null };
      gradings.push(grading);
      open.set(key, [...(open.get(key) ?? []), grading]);
    } else if (event === 'grading-finished') {
      const started = open.get(key)?.shift();
      if (started) started.outcome = String(outcome);
    }
  }
  const excuses = (earlier: Grading, repeat: Grading) =>
    earlier.outcome === 'failed' ||
    (earlier.outcome === null &&
      earlier.pid !== repeat.pid &&
      kills.some(
        (kill) =>
          kill.pid === earlier.pid &&
          earlier.startedAtMs <= kill.atMs &&
          kill.atMs < repeat.startedAtMs,
      ));
  const bySubmission = new Map<number, Grading[]>();
  for (const grading of gradings) {
    bySubmission.set(grading.submissionId, [
      ...(bySubmission.get(grading.submissionId) ?? []),
      grading,
    ]);
  }
  const gradedTwice = [...bySubmission]
    .filter(([, list]) => {
      const inOrder = list.sort((a, b) => a.startedAtMs - b.startedAtMs);
      return inOrder.some((repeat, i) => inOrder.slice(0, i).some((e) => !excuses(e, repeat)));
    })
    .map(([id]) => id);
  const sorted = (list: number[]) => list.sort((a, b) => a - b);
  const unfinishedBy = [...new Set(gradings.filter((g) => g.outcome === null).map((g) => g.pid))];
  return {
    graded: sorted([...bySubmission.keys()]),
    gradedTwice: sorted(gradedTwice),
    /** Processes with a grading that never finished: only a killed one may have any. */
    unfinishedBy,
  };
}

/** Submissions one connection (process, queue, index) posted more than once. */
function postedTwiceByOneConnection(lines: readonly WatcherEventLine[]): number[] {
  const seen = new Set<string>();
  const twice = new Set<number>();
  for (const { event, pid, fields } of lines) {
    if (event !== 'result-accepted' || typeof fields.submissionId !== 'number') continue;
    const poster = `${pid}/${String(fields.queue)}/${String(fields.connection)} ${fields.submissionId}`;
    if (seen.has(poster)) twice.add(fields.submissionId);
    seen.add(poster);
  }
  return [...twice].sort((a, b) => a - b);
}

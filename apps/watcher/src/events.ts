import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { WatcherMetrics } from './metrics.ts';

/**
 * Events a supervisor counts from a replica's stdout: each is one JSON line with an `event`
 * field, printed whatever LOG_LEVEL says (the storm runner and the harness read them).
 * `result-accepted` (fields `submissionId`, `jobId`; in upstream's serial loop also the
 * connection's `queue` and `connection` index, from its logger) is a put_result the LMS
 * answered with success. Counted across replicas, they show a submission posted twice, which the LMS's submission state cannot: it answers a repeat with
 * success and changes nothing. `grading-started` (fields `queue`, `submissionId`, `jobId`) is
 * printed by the BullMQ processor as it starts grading a job, `grading-finished` (the same and
 * `outcome`: `correct`, `incorrect`, `malformed`, or `failed` when the processor threw and BullMQ
 * may retry it) once BullMQ has marked that job done; with the line's `pid` and `replica` they
 * name the process. Counted per submission across replicas and incarnations, they show a
 * submission graded twice, and a started grading without a finish whose process was killed is
 * the one repeat at-least-once delivery allows.
 * `replica-counters` is printed once by an incarnation that stops (on SIGTERM or SIGINT, or after
 * a dead connection), after its last request: its own counters (`logins`, `authFailures`,
 * `forbidden` (the auth failures answered 403), `loginTimeouts`, `graded`), so a supervisor can
 * sum them over incarnations whose metrics endpoint is gone. A SIGKILLed one prints none.
 */
export type WatcherEvent =
  | 'first-login'
  | 'login-timeout'
  | 'connection-died'
  | 'replica-exit'
  | 'result-accepted'
  | 'grading-started'
  | 'grading-finished'
  | 'replica-counters';

/**
 * Logs one {@link WatcherEvent} line.
 *
 * @example
 * logEvent(logger, 'error', 'connection-died', { reason }, 'connection died');
 */
export function logEvent(
  logger: Logger,
  level: 'info' | 'warn' | 'error',
  event: WatcherEvent,
  fields: Record<string, unknown>,
  message: string,
): void {
  logger.child({ event }, { level: 'info' })[level](fields, message);
}

/**
 * Logs a `grading-started` or `grading-finished` line for a job.
 *
 * @example
 * logGrading(logger, 'grading-finished', job, 'correct');
 */
export function logGrading(
  logger: Logger,
  event: 'grading-started' | 'grading-finished',
  job: { id?: string | undefined; data: { queue: string; submissionId: number } },
  outcome?: string,
): void {
  const fields = { queue: job.data.queue, submissionId: job.data.submissionId, jobId: job.id };
  const message = event === 'grading-started' ? 'grading started' : 'grading finished';
  logEvent(logger, 'info', event, outcome === undefined ? fields : { ...fields, outcome }, message);
}

async function total(counter: Counter<string>, labels: Record<string, string> = {}) {
  const { values } = await counter.get();
  return values
    .filter((value) => Object.entries(labels).every(([k, v]) => value.labels[k] === v))
    .reduce((sum, value) => sum + value.value, 0);
}

/**
 * Logs this incarnation's `replica-counters` line; call it once the replica has stopped.
 *
 * @example
 * await replica.stop(); await logReplicaCounters(logger, metrics); process.exit(0);
 */
export async function logReplicaCounters(logger: Logger, metrics: WatcherMetrics): Promise<void> {
  const counters = {
    logins: await total(metrics.logins),
    authFailures: await total(metrics.authFailures),
    forbidden: await total(metrics.authFailures, { status: '403' }),
    loginTimeouts: await total(metrics.loginTimeouts),
    graded: await total(metrics.graded),
  };
  logEvent(logger, 'info', 'replica-counters', counters, 'counters of this incarnation');
}

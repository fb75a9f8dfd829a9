import type { Logger } from 'pino';

/**
 * Events a supervisor counts from a replica's stdout: each is one JSON line with an `event`
 * field, printed whatever LOG_LEVEL says (the storm runner and the harness read them).
 * `result-accepted` (fields `submissionId`, `jobId`; in upstream's serial loop also the
 * connection's `queue` and `connection` index, from its logger) is a put_result the LMS
 * answered with success. Counted across replicas, they show a submission posted twice, which the LMS's submission state cannot: it answers a repeat with
 * success and changes nothing. `grading-started` and `grading-finished` (fields `queue`,
 * `submissionId`, `jobId`, `attempt`; the finish also `outcome`: `correct`, `incorrect`,
 * `malformed`, or `failed` when the grading threw and BullMQ retries it) bracket every grading a
 * BullMQ processor runs; with the line's `pid` and `replica` they name the process that graded.
 * Counted per submission across replicas and incarnations, they show a submission graded twice.
 */
export type WatcherEvent =
  | 'first-login'
  | 'login-timeout'
  | 'connection-died'
  | 'replica-exit'
  | 'result-accepted'
  | 'grading-started'
  | 'grading-finished';

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

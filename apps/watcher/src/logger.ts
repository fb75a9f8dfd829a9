import { type Logger, pino } from 'pino';

/**
 * JSON lines on stdout, one logger per replica process; every line names the replica.
 *
 * @example
 * const logger = createLogger({ replicaId: 'watcher-1', level: 'info' });
 * logger.info({ url }, 'metrics listening');
 */
export function createLogger(options: { replicaId: string; level: string }): Logger {
  return pino({
    level: options.level,
    base: { replica: options.replicaId, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

import pino, { type Logger } from 'pino';
import type { LmsConfig } from '../env.ts';

/**
 * The process logger: JSON lines on stdout (what the harness and log shippers read), pretty
 * only when a person is watching a terminal.
 *
 * @example
 * const logger = createLogger('info', process.stdout.isTTY === true);
 */
export function createLogger(level: LmsConfig['logLevel'], pretty: boolean): Logger {
  if (!pretty) return pino({ level, base: { service: 'lms' } });
  return pino({
    level,
    base: { service: 'lms' },
    transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
  });
}

import { z } from 'zod';

const RELOGIN_MODES = ['once-per-request', 'unbounded'] as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How a client reacts to 301/302/401/403: see `XQueueClient`. */
export type ReloginMode = (typeof RELOGIN_MODES)[number];

const optionalText = z.string().trim().min(1).optional();

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], {
      error: 'expected one of true, false, 1, 0, yes, no',
    })
    .optional()
    .transform((value) => (value === undefined ? fallback : ['true', '1', 'yes'].includes(value)));

const integer = (min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((value, ctx): number | undefined => {
      if (value === undefined || value.trim() === '') return undefined;
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
        ctx.addIssue({ code: 'custom', message: `expected an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return parsed;
    });

/** Seconds, fractional allowed, because the storm runner compresses time. */
const seconds = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined || value.trim() === '') return undefined;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed <= 0) {
      ctx.addIssue({ code: 'custom', message: 'expected a positive number of seconds, e.g. 0.05' });
      return z.NEVER;
    }
    return parsed;
  });

const queueList = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined || value.trim() === '') return undefined;
    const names = value.split(',').map((name) => name.trim());
    if (names.some((name) => !/^[A-Za-z0-9_.-]+$/.test(name))) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected a comma list of names like a,b (letters, digits, _ . -)',
      });
      return z.NEVER;
    }
    return [...new Set(names)];
  });

const envSchema = z.object({
  REDIS_URL: z
    .url({ error: 'expected a URL such as redis://127.0.0.1:6379' })
    .default('redis://127.0.0.1:6379'),
  WATCHER_REPLICA_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected 1-64 letters, digits, _ . -')
    .optional(),
  WATCHER_CONFIG_DIR: optionalText,
  LMS_URL: z.url({ error: 'expected a URL such as http://127.0.0.1:8000' }).optional(),
  XQUEUE_USERNAME: optionalText,
  XQUEUE_PASSWORD: z.string().min(1).optional(),
  WATCHER_CONNECTIONS: integer(1, 100),
  WATCHER_QUEUES: queueList,
  WATCHER_RELOGIN: z
    .enum(RELOGIN_MODES, { error: `expected one of ${RELOGIN_MODES.join(', ')}` })
    .default('once-per-request'),
  WATCHER_SEND_INSTANCE_ID: flag(false),
  WATCHER_CONCURRENCY: integer(1, 1000).transform((value) => value ?? 4),
  WATCHER_METRICS_PORT: integer(0, 65535).transform((value) => value ?? 9100),
  WATCHER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  WATCHER_QUEUE_PREFIX: z
    .string()
    .regex(/^[^:\s]+$/, 'expected a non-empty prefix without ":" or spaces')
    .default('storm'),
  WATCHER_JOB_LOCK_MS: integer(100, 3_600_000).transform((value) => value ?? 30_000),
  WATCHER_POLL_INTERVAL: seconds,
  WATCHER_LOGIN_POLL_INTERVAL: seconds,
  WATCHER_REQUESTS_TIMEOUT: seconds,
  LOG_LEVEL: z
    .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` })
    .default('info'),
  INIT_CWD: optionalText,
  HOSTNAME: optionalText,
});

/** The watcher's environment, parsed and defaulted. */
export type WatcherEnv = z.infer<typeof envSchema>;

/** Thrown when the environment is invalid; the message names each variable and what it accepts. */
export class EnvError extends Error {
  override name = 'EnvError';
}

/**
 * Parses the environment once. Nothing else in the watcher reads `process.env`.
 *
 * @example
 * const env = parseEnv(process.env); // throws EnvError naming e.g. WATCHER_RELOGIN
 */
export function parseEnv(source: Record<string, string | undefined>): WatcherEnv {
  // An empty variable (FOO= in a compose file) means "not set", as shells treat it.
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const result = envSchema.safeParse(present);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? 'environment');
    return `  ${name}=${JSON.stringify(source[name] ?? '')}: ${issue.message}`;
  });
  throw new EnvError(`invalid environment:\n${lines.join('\n')}`);
}

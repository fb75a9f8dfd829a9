import { z } from 'zod';
import { HANDLER_NAMES, type HandlerName, type HandlerSpec, parseHandler } from './graders.ts';

const WATCHER_MODES = ['current', 'legacy', 'hardened'] as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Which xqueue-watcher the clients behave like (`WATCHER_MODE`): see `XQueueClient`. */
export type WatcherMode = (typeof WATCHER_MODES)[number];

type LogLevel = (typeof LOG_LEVELS)[number];

// Python's level names as xqueue-watcher's configure_logging takes them (upper-cased).
const PYTHON_LOG_LEVELS: Record<string, LogLevel> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
};

/** Variables whose value would leak a secret into an error message. */
const SECRET_VARIABLES = new Set(['XQUEUE_PASSWORD', 'XQWATCHER_HTTP_BASIC_AUTH']);

const optionalText = z.string().trim().min(1).optional();

/** One boolean syntax for every variable: true/false/1/0/yes/no, any case. */
const bool = z
  .string()
  .optional()
  .transform((value, ctx): boolean | undefined => {
    if (value === undefined) return undefined;
    const word = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(word)) return true;
    if (['false', '0', 'no'].includes(word)) return false;
    ctx.addIssue({ code: 'custom', message: 'expected one of true, false, 1, 0, yes, no' });
    return z.NEVER;
  });

const flag = (fallback: boolean) => bool.transform((value) => value ?? fallback);

/** A variable this watcher no longer reads: setting it is an error that names the replacement. */
const removed = (instead: string) =>
  z
    .string()
    .optional()
    .refine((value) => value === undefined, { message: `no longer read; ${instead}` });

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

/** `username:password`, split at the first colon as xqueue-watcher's env_settings does. */
const basicAuth = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined) return undefined;
    const colon = value.indexOf(':');
    if (colon < 1) {
      ctx.addIssue({ code: 'custom', message: 'expected username:password' });
      return z.NEVER;
    }
    return { username: value.slice(0, colon), password: value.slice(colon + 1) };
  });

const pythonLogLevel = z
  .string()
  .optional()
  .transform((value, ctx): LogLevel | undefined => {
    if (value === undefined) return undefined;
    const name = value.trim().toUpperCase();
    if (Object.hasOwn(PYTHON_LOG_LEVELS, name)) return PYTHON_LOG_LEVELS[name];
    ctx.addIssue({
      code: 'custom',
      message: `expected one of ${Object.keys(PYTHON_LOG_LEVELS).join(', ')}`,
    });
    return z.NEVER;
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

/**
 * One `HANDLERS` entry in conf.d's form, `{"HANDLER": name, "KWARGS": {...}}`, validated like one
 * read from a file (only this watcher's mock graders: no Python path stands in for nothing).
 */
const handlerEntry = z
  .string()
  .optional()
  .transform((value, ctx): HandlerSpec | undefined => {
    if (value === undefined || value.trim() === '') return undefined;
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'expected JSON such as {"HANDLER": "slow-flaky", "KWARGS": {"latency_ms": 500}}',
      });
      return z.NEVER;
    }
    const entry = z
      .strictObject({ HANDLER: z.string(), KWARGS: z.unknown().optional() })
      .safeParse(json);
    if (!entry.success) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected an object with HANDLER and, optionally, KWARGS',
      });
      return z.NEVER;
    }
    const { HANDLER, KWARGS } = entry.data;
    const spec = (HANDLER_NAMES as string[]).includes(HANDLER)
      ? parseHandler(HANDLER, KWARGS)
      : {
          ok: false as const,
          error: `unknown HANDLER "${HANDLER}"; accepted: ${HANDLER_NAMES.join(', ')}`,
        };
    if (!spec.ok) {
      ctx.addIssue({ code: 'custom', message: spec.error });
      return z.NEVER;
    }
    return spec.value;
  });

/**
 * Every variable the watcher reads, each with its `.describe()` text: the source of the
 * configuration reference (docs/configuration.md). An unset variable's default is what its
 * schema gives for `undefined`.
 *
 * @example
 * ENV_SCHEMA.shape.WATCHER_MODE.description; // 'Which xqueue-watcher the clients behave as: ...'
 */
export const ENV_SCHEMA = z.object({
  REDIS_URL: z
    .url({ error: 'expected a URL such as redis://127.0.0.1:6379' })
    .default('redis://127.0.0.1:6379')
    .describe("BullMQ's Redis, shared by every replica of the fleet."),
  WATCHER_REPLICA_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected 1-64 letters, digits, _ . -')
    .optional()
    .describe(
      'Replica id in logs, metrics and `X-Client-Instance` (1-64 letters, digits, `_ . -`); unset: the host name. `--replicas N` appends `-1..N`.',
    ),
  WATCHER_CONFIG_DIR: optionalText.describe(
    'An xqueue-watcher config directory (`conf.d/*.json`, `xqueue_servers.json`, `xqwatcher.json`), read unchanged; `--config-dir` overrides it.',
  ),
  LMS_URL: z
    .url({ error: 'expected a URL such as http://127.0.0.1:8000' })
    .optional()
    .describe("Overrides every queue's `SERVER` (for containers and the storm runner)."),
  XQUEUE_USERNAME: optionalText.describe("Overrides every queue's `AUTH` username."),
  XQUEUE_PASSWORD: z
    .string()
    .min(1)
    .optional()
    .describe("Overrides every queue's `AUTH` password (never shown in errors)."),
  WATCHER_CONNECTIONS: integer(1, 100).describe(
    "xqueue clients per queue per replica (1 to 100), each with its own login; overrides every queue's `CONNECTIONS`. Unset: `CONNECTIONS`, else 1.",
  ),
  WATCHER_QUEUES: queueList.describe(
    'Comma-separated queues to serve; a queue missing from conf.d uses the environment credentials and the default handler (`WATCHER_DEFAULT_HANDLER`). Unset: every conf.d queue.',
  ),
  WATCHER_MODE: z
    .enum(WATCHER_MODES, { error: `expected one of ${WATCHER_MODES.join(', ')}` })
    .default('current')
    .describe(
      "Which xqueue-watcher the clients behave as: `current` (the current release: one re-login on 301/302/401/403), `legacy` (before its re-login-on-403 change) or `hardened` (this project's client). Replaces `WATCHER_RELOGIN`.",
    ),
  WATCHER_PYTHON_HANDLER: z
    .enum(HANDLER_NAMES as [HandlerName, ...HandlerName[]], {
      error: `expected one of ${HANDLER_NAMES.join(', ')}`,
    })
    .default('exact-answer')
    .describe(
      'Mock grader standing in for a dotted Python `HANDLER` path in conf.d: `exact-answer`, `slow-flaky` or `test-report`.',
    ),
  WATCHER_DEFAULT_HANDLER: handlerEntry.describe(
    'The handler of a queue that names none, as one conf.d `HANDLERS` entry in JSON, e.g. `{"HANDLER": "slow-flaky", "KWARGS": {"latency_ms": 500}}` (the storm runner sets it to its compressed grading time). Unset: `exact-answer`.',
  ),
  WATCHER_SEND_INSTANCE_ID: flag(false).describe(
    "Send `X-Client-Instance` on login, for session-policy's instance scope.",
  ),
  WATCHER_CONCURRENCY: integer(1, 1000)
    .transform((value) => value ?? 4)
    .describe('BullMQ worker concurrency per queue per replica (1 to 1000).'),
  WATCHER_METRICS_PORT: integer(0, 65535)
    .transform((value) => value ?? 9100)
    .describe(
      'Prometheus port of the replica (replica i of `--replicas` gets base + i - 1; `0` = a free port).',
    ),
  WATCHER_METRICS_HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('Address the metrics endpoint listens on.'),
  WATCHER_QUEUE_PREFIX: z
    .string()
    .regex(/^[^:\s]+$/, 'expected a non-empty prefix without ":" or spaces')
    .default('storm')
    .describe('BullMQ key prefix (no `:` or spaces).'),
  WATCHER_JOB_LOCK_MS: integer(100, 3_600_000)
    .transform((value) => value ?? 30_000)
    .describe(
      "BullMQ's job lock in milliseconds: a dead replica's jobs are picked up by another after it.",
    ),
  WATCHER_TEST_GRADE_EVERY_JOB_TWICE: flag(false).describe(
    'TEST ONLY: grade every job twice, the control that proves the graded-twice counts catch a repeat. Never set it in a deployment.',
  ),
  // xqueue-watcher's own variables (docs/operators.md); unset ones fall back to xqwatcher.json.
  XQWATCHER_HTTP_BASIC_AUTH: basicAuth.describe(
    '`user:pass` (split at the first colon), sent on every request; overrides `HTTP_BASIC_AUTH` of `xqwatcher.json` (never shown in errors).',
  ),
  XQWATCHER_POLL_TIME: seconds.describe(
    "The manager's sleep after each connection it looks at for a death, one connection at a time in start order, as upstream's `Manager.wait` (fractions allowed); overrides `POLL_TIME` of `xqwatcher.json`, whose default is 10.",
  ),
  XQWATCHER_REQUESTS_TIMEOUT: seconds.describe(
    'Timeout of each request, both login requests included (fractions allowed); overrides `REQUESTS_TIMEOUT` of `xqwatcher.json`, whose default is 1. Replaces `WATCHER_REQUESTS_TIMEOUT`.',
  ),
  XQWATCHER_POLL_INTERVAL: seconds.describe(
    'Seconds a connection sleeps after an empty or failed poll (fractions allowed); overrides `POLL_INTERVAL` of `xqwatcher.json`, whose default is 1. Replaces `WATCHER_POLL_INTERVAL`.',
  ),
  XQWATCHER_LOGIN_POLL_INTERVAL: seconds.describe(
    'Seconds between attempts of a failed first login (fractions allowed); overrides `LOGIN_POLL_INTERVAL` of `xqwatcher.json`, whose default is 5. Replaces `WATCHER_LOGIN_POLL_INTERVAL`.',
  ),
  XQWATCHER_FOLLOW_CLIENT_REDIRECTS: bool.describe(
    "Overrides `FOLLOW_CLIENT_REDIRECTS` of `xqwatcher.json` (default false); parsed but, as upstream's Manager, not passed to the clients.",
  ),
  XQWATCHER_VERIFY_TLS: flag(true).describe(
    'Verify TLS certificates; `false` is for development only (a warning says so).',
  ),
  XQWATCHER_LOG_LEVEL: pythonLogLevel.describe(
    "Python's level names as xqueue-watcher takes them: `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`; used when `LOG_LEVEL` is unset.",
  ),
  LOG_LEVEL: z
    .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` })
    .optional()
    .describe(
      'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Unset: `XQWATCHER_LOG_LEVEL`, else `info`. Lines with an `event` field are printed whatever the level.',
    ),
  WATCHER_RELOGIN: removed('use WATCHER_MODE (current|legacy|hardened)').describe(
    'No longer read: setting it is an error; use `WATCHER_MODE`.',
  ),
  WATCHER_POLL_INTERVAL: removed('use XQWATCHER_POLL_INTERVAL').describe(
    'No longer read: setting it is an error; use `XQWATCHER_POLL_INTERVAL`.',
  ),
  WATCHER_LOGIN_POLL_INTERVAL: removed('use XQWATCHER_LOGIN_POLL_INTERVAL').describe(
    'No longer read: setting it is an error; use `XQWATCHER_LOGIN_POLL_INTERVAL`.',
  ),
  WATCHER_REQUESTS_TIMEOUT: removed('use XQWATCHER_REQUESTS_TIMEOUT').describe(
    'No longer read: setting it is an error; use `XQWATCHER_REQUESTS_TIMEOUT`.',
  ),
  INIT_CWD: optionalText.describe(
    'Set by pnpm: where you ran it. A relative `--config-dir` is resolved against it.',
  ),
  HOSTNAME: optionalText.describe('Set by the system: the default replica id.'),
});

const envSchema = ENV_SCHEMA.transform(
  ({
    WATCHER_RELOGIN: _relogin,
    WATCHER_POLL_INTERVAL: _poll,
    WATCHER_LOGIN_POLL_INTERVAL: _loginPoll,
    WATCHER_REQUESTS_TIMEOUT: _timeout,
    XQWATCHER_LOG_LEVEL,
    LOG_LEVEL,
    ...rest
  }) => ({ ...rest, LOG_LEVEL: LOG_LEVEL ?? XQWATCHER_LOG_LEVEL ?? 'info' }),
);

/** The watcher's environment, parsed and defaulted. */
export type WatcherEnv = z.output<typeof envSchema>;

/** Thrown when the environment is invalid; the message names each variable and what it accepts. */
export class EnvError extends Error {
  override name = 'EnvError';
}

/**
 * Parses the environment once. Nothing else in the watcher reads `process.env`.
 *
 * @example
 * const env = parseEnv(process.env); // throws EnvError naming e.g. WATCHER_MODE
 */
export function parseEnv(source: Record<string, string | undefined>): WatcherEnv {
  // An empty variable (FOO= in a compose file) means "not set", as shells treat it.
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const result = envSchema.safeParse(present);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? 'environment');
    const shown = SECRET_VARIABLES.has(name) ? '(hidden)' : JSON.stringify(source[name] ?? '');
    return `  ${name}=${shown}: ${issue.message}`;
  });
  throw new EnvError(`invalid environment:\n${lines.join('\n')}`);
}

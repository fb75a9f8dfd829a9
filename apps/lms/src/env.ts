import { isAbsolute, resolve } from 'node:path';
import {
  type PolicySettings,
  PolicySettingsError,
  settingsFromEnv,
} from '@storm-lab/session-policy';
import { z } from 'zod';
import { SYNCHRONOUS_MODES, type SynchronousMode } from './db/client.ts';
import { compileProxyTrust } from './http/client-address.ts';
import { originOf } from './http/csrf.ts';

/** Everything the LMS reads from its environment, validated. */
export interface LmsConfig {
  port: number;
  host: string;
  /** Absolute path of the SQLite file. */
  databasePath: string;
  passwordHashIterations: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  xqueueLockSeconds: number;
  /** Expired locks after which a submission is marked failed; 0 = serve it forever. */
  xqueueMaxFailures: number;
  sessionTtlSeconds: number;
  stormAlertEvictionsPerMinute: number;
  maxBodyBytes: number;
  /** Failed logins per account or address within the window before 429; 0 = no throttle. */
  loginThrottleFailures: number;
  loginThrottleWindowSeconds: number;
  /**
   * TRUST_PROXY: the reverse proxies (addresses, CIDR ranges, `loopback`, `linklocal`,
   * `uniquelocal`); only a request from one of them has its X-Forwarded-* headers read. Empty:
   * none.
   */
  trustProxy: string[];
  /** CSRF_TRUSTED_ORIGINS: other origins allowed to post to the login and logout, normalised. */
  csrfTrustedOrigins: string[];
  /** SQLITE_SYNCHRONOUS: `full` syncs every commit to disk before the answer; `normal` does not. */
  sqliteSynchronous: SynchronousMode;
  /** METRICS_TOKEN: when set, `/metrics` requires `Authorization: Bearer <token>`; null: open. */
  metricsToken: string | null;
  /**
   * SINGLE_LOGIN_ENFORCEMENT: `atomic` admits a login in one transaction; `upstream` runs
   * edx-platform's set_login_session step by step, without a lock, to show its race.
   */
  enforcement: 'atomic' | 'upstream';
  /**
   * SESSION_STORE: where sessions live. `sqlite` (the database file) or `redis` (as Django's
   * cache session backend: lookup, admission and eviction go through Redis at `url`).
   */
  sessionStore: { kind: 'sqlite' } | { kind: 'redis'; url: string; prefix: string };
  /** LMS_WORKERS: processes sharing the port (node:cluster), as gunicorn workers; 1 = no cluster. */
  workers: number;
  policy: PolicySettings;
}

/** Thrown when a variable is invalid; the message names it and the accepted values. */
export class EnvError extends Error {
  override readonly name = 'EnvError';
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const PROXY_LIST =
  'the reverse proxies in front of the LMS, comma-separated: addresses or CIDR ranges ' +
  '(e.g. 127.0.0.1,10.0.0.0/8) or loopback, linklocal, uniquelocal; empty or false = none';

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const positive = (max: number) => z.coerce.number().positive().max(max);

// Each entry: the schema and, for the error message, the values it accepts.
const VARIABLES = {
  PORT: {
    schema: integer(0, 65_535)
      .default(8000)
      .describe('Port the LMS listens on; `0` picks a free port.'),
    accepts: 'an integer 0..65535 (0 = any free port)',
  },
  HOST: {
    schema: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe(
        'Address the LMS listens on. Off loopback `pnpm lms seed` uses no default password, and `pnpm lms serve` first warns about accounts that still have one.',
      ),
    accepts: 'a host name or IP address',
  },
  DATABASE_PATH: {
    schema: z
      .string()
      .min(1)
      .default('./data/lms.db')
      .describe(
        'The SQLite file (WAL mode), relative to where you ran pnpm (`INIT_CWD`), or `:memory:`.',
      ),
    accepts: 'a file path or :memory:',
  },
  PASSWORD_HASH_ITERATIONS: {
    schema: integer(1, 10_000_000)
      .default(1_000_000)
      .describe(
        "PBKDF2 iterations for new password hashes (Django 5.2's count); a login hashes a password stored at another count again.",
      ),
    accepts: 'an integer 1..10000000',
  },
  LOG_LEVEL: {
    schema: z
      .enum(LOG_LEVELS)
      .default('info')
      .describe(
        'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`; JSON lines on stdout unless it is a terminal.',
      ),
    accepts: LOG_LEVELS.join(', '),
  },
  XQUEUE_LOCK_SECONDS: {
    schema: positive(86_400)
      .default(300)
      .describe(
        'A pulled submission without a result is served again, with the same key, after this many seconds (fractions allowed; upstream: 5 minutes, fixed).',
      ),
    accepts: 'seconds > 0, fractions allowed',
  },
  XQUEUE_MAX_FAILURES: {
    schema: integer(0, 1_000_000)
      .default(0)
      .describe('Serves of an expired lock after which a submission is `failed`; `0` = never.'),
    accepts: 'an integer >= 0 (0 = never fail)',
  },
  SESSION_TTL_SECONDS: {
    schema: positive(31_536_000)
      .default(1_209_600)
      .describe("Lifetime of a session in seconds (two weeks, as Django's `SESSION_COOKIE_AGE`)."),
    accepts: 'seconds > 0 (at most a year)',
  },
  STORM_ALERT_EVICTIONS_PER_MINUTE: {
    schema: positive(1_000_000)
      .default(30)
      .describe(
        'Evictions of one account within a sliding minute that raise a storm alert (log line, metrics, dashboard banner).',
      ),
    accepts: 'a number > 0',
  },
  MAX_BODY_BYTES: {
    schema: integer(1024, 100 * 1024 * 1024)
      .default(1_048_576)
      .describe(
        'Larger request bodies get 413 on every route, before authentication (1024 to 104857600).',
      ),
    accepts: 'bytes 1024..104857600',
  },
  LOGIN_THROTTLE_FAILURES: {
    schema: integer(0, 1_000_000)
      .default(10)
      .describe(
        'Password checks per account, and per client address, within the window: an address beyond it gets 429, an account beyond it a growing delay of 1 s to 30 s for addresses it does not trust; `0` = no throttle.',
      ),
    accepts: 'an integer >= 0 (0 = no throttle)',
  },
  LOGIN_THROTTLE_WINDOW_SECONDS: {
    schema: positive(86_400)
      .default(300)
      .describe('The sliding window of the login throttle, in seconds.'),
    accepts: 'seconds > 0 (at most a day)',
  },
  TRUST_PROXY: {
    schema: z
      .string()
      .default('')
      .transform((text, context) => {
        if (text === 'false') return [];
        const proxies = text
          .split(',')
          .map((entry) => entry.trim())
          .filter((entry) => entry !== '');
        try {
          compileProxyTrust(proxies);
        } catch {
          context.addIssue({ code: 'custom', message: 'not a proxy address or range' });
          return z.NEVER;
        }
        return proxies;
      })
      .describe(
        "The reverse proxies in front of the LMS, comma-separated addresses or CIDR ranges, or `loopback`, `linklocal`, `uniquelocal` (e.g. `127.0.0.1,10.0.0.0/8`), as Express's `trust proxy`. Only a request whose socket peer is one of them has its `X-Forwarded-For` / `-Proto` / `-Host` read: the client address is the right-most `X-Forwarded-For` entry that is not a proxy, scheme and host the last entry. Empty or `false`: none; `true` is refused at start (it would believe any client).",
      ),
    accepts: PROXY_LIST,
  },
  CSRF_TRUSTED_ORIGINS: {
    schema: z
      .string()
      .default('')
      .transform((text, context) => {
        const entries = text.split(',').map((entry) => entry.trim());
        const origins = entries.filter((entry) => entry !== '').map(originOf);
        if (origins.includes(null)) {
          context.addIssue({ code: 'custom', message: 'not an origin' });
          return z.NEVER;
        }
        return origins as string[];
      })
      .describe(
        "Comma-separated origins (`scheme://host[:port]`) besides the LMS's own that may POST to `/login`, `/logout`, `/xqueue/login/` (Django's setting); a foreign `Origin` or `Referer` is refused.",
      ),
    accepts:
      'comma-separated origins scheme://host[:port] (http or https, no path, no wildcard), e.g. https://lms.example,http://127.0.0.1:8000; empty = none',
  },
  SQLITE_SYNCHRONOUS: {
    schema: z
      .enum(SYNCHRONOUS_MODES)
      .default('full')
      .describe(
        '`full`: each commit is fsynced before its answers go out, so every answered write survives a power loss; `normal`: no fsync at commit (faster), a power loss may drop the last commits.',
      ),
    accepts: SYNCHRONOUS_MODES.join(' or '),
  },
  METRICS_TOKEN: {
    // A bearer token (RFC 6750's characters), long enough not to be guessed.
    schema: z
      .string()
      .min(16)
      .max(512)
      .regex(/^[A-Za-z0-9._~+/-]+=*$/)
      .nullable()
      .default(null)
      .describe(
        'When set (16 to 512 characters of `A-Za-z0-9._~+/-`), `/metrics` requires `Authorization: Bearer <token>`, else 401. Per-account series name only service accounts; people are counted under `account="(people)"`.',
      ),
    accepts:
      'empty (open) or 16..512 characters of A-Z a-z 0-9 . _ ~ + / - ' +
      '(then /metrics needs Authorization: Bearer <token>)',
    secret: true,
  },
  LMS_WORKERS: {
    schema: integer(1, 64)
      .default(1)
      .describe(
        "Worker processes sharing the port (`node:cluster`), as gunicorn's workers; more than one needs `SESSION_STORE=redis`. The primary migrates the database, forks the workers, replaces one that dies (a worker started while the session Redis is down waits up to 10 s for it) and stops them all on SIGTERM. `/metrics` on any worker sums every worker's counters (`lms_workers_serving` counts those that listen); the storm detector runs in the primary, fed by every worker's logins.",
      ),
    accepts: 'an integer 1..64',
  },
  SESSION_STORE: {
    schema: z
      .enum(['sqlite', 'redis'])
      .default('sqlite')
      .describe(
        "Where sessions live. `sqlite`: the database file. `redis`: a Redis every LMS process shares, as Django's cache session backend (lookup, admission and eviction through session-policy's Redis registry; users, groups, the profile slot and session ends stay in SQLite); the LMS refuses to start when that Redis cannot be reached, and a session Redis let expire answers as unknown, not `expired`. Each start records the store in the database, so `pnpm lms sessions` and a password change act on the LMS's sessions whatever the shell's `SESSION_STORE`.",
      ),
    accepts: 'sqlite (the database file) or redis (SESSION_REDIS_URL, else REDIS_URL)',
  },
  SESSION_REDIS_URL: {
    schema: z
      .string()
      .regex(/^rediss?:\/\/\S+$/)
      .nullable()
      .default(null)
      .describe(
        'The Redis of `SESSION_STORE=redis` (`redis://` or `rediss://`); unset: `REDIS_URL`.',
      ),
    accepts: 'a redis:// or rediss:// URL',
  },
  SESSION_REDIS_PREFIX: {
    schema: z
      .string()
      .regex(/^[^\s{}]{1,64}$/)
      .default('lms:')
      .describe(
        "Put before every session key, so several LMSs can share one Redis: up to 64 characters, no spaces, `{` or `}` (one user's keys share a Redis Cluster hash tag).",
      ),
    accepts: 'up to 64 characters, no spaces, "{" or "}" (a Redis Cluster hash tag)',
  },
  REDIS_URL: {
    schema: z
      .string()
      .regex(/^rediss?:\/\/\S+$/)
      .default('redis://127.0.0.1:6379')
      .describe(
        'The session Redis when `SESSION_REDIS_URL` is unset (the watcher fleet reads the same variable for BullMQ).',
      ),
    accepts: 'a redis:// or rediss:// URL',
  },
  SINGLE_LOGIN_ENFORCEMENT: {
    schema: z
      .enum(['atomic', 'upstream'])
      .default('atomic')
      .describe(
        "`atomic`: a login's read-decide-evict-record is one transaction. `upstream`: edx-platform's `set_login_session` step by step with no lock (read the profile's `session_id`, delete that session, write the new id), so its race can be watched (`pnpm storm race`); takes only the flag and the exemptions (the other `SINGLE_LOGIN_*` variables are refused at start).",
      ),
    accepts:
      "atomic (one transaction) or upstream (edx-platform's set_login_session: read the " +
      'slot, delete that session, write the new id, no lock; single session only)',
  },
} as const;

type Source = Readonly<Record<string, string | undefined>>;

function readVariable<K extends keyof typeof VARIABLES>(source: Source, name: K) {
  const raw = source[name];
  const value = raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  const result = VARIABLES[name].schema.safeParse(value);
  if (!result.success) {
    // A secret's value stays out of the message, which ends up in logs.
    const shown =
      'secret' in VARIABLES[name] ? ` (${raw?.length ?? 0} characters)` : `=${JSON.stringify(raw)}`;
    throw new EnvError(`${name}${shown} is invalid: expected ${VARIABLES[name].accepts}`);
  }
  return result.data as z.output<(typeof VARIABLES)[K]['schema']>;
}

/** The LMS's own variables (the session policy's are `POLICY_ENV` of session-policy). */
export const ENV_VARIABLES: readonly string[] = Object.keys(VARIABLES);

/**
 * Each of the LMS's own variables with its schema, whose `.describe()` text and default make
 * the configuration reference (docs/configuration.md).
 *
 * @example
 * ENV_SCHEMAS.PORT?.description; // 'Port the LMS listens on; ...'
 */
export const ENV_SCHEMAS: Readonly<Record<string, z.ZodType>> = Object.fromEntries(
  Object.entries(VARIABLES).map(([name, { schema }]) => [name, schema]),
);

/**
 * Parses an environment into {@link LmsConfig}. A relative DATABASE_PATH is resolved against
 * `INIT_CWD` (where the user ran pnpm), else `cwd`.
 *
 * @example
 * const config = parseEnv({ PORT: '0', PASSWORD_HASH_ITERATIONS: '1000' }, '/tmp');
 */
export function parseEnv(source: Source, cwd: string): LmsConfig {
  let policy: PolicySettings;
  try {
    policy = settingsFromEnv(source);
  } catch (error) {
    if (error instanceof PolicySettingsError) throw new EnvError(error.message);
    throw error;
  }
  const enforcement = readVariable(source, 'SINGLE_LOGIN_ENFORCEMENT');
  if (enforcement === 'upstream') {
    // Upstream has one session slot and two exemption lists; the rules beyond it are not run.
    const beyond = [
      'SINGLE_LOGIN_MAX_SESSIONS',
      'SINGLE_LOGIN_ON_LIMIT',
      'SINGLE_LOGIN_SCOPE',
      'SINGLE_LOGIN_RULES',
      'SINGLE_LOGIN_DRY_RUN',
    ].filter((variable) => (source[variable] ?? '').trim() !== '');
    if (beyond.length > 0) {
      throw new EnvError(
        `SINGLE_LOGIN_ENFORCEMENT=upstream runs edx-platform's single slot only: unset ${beyond.join(', ')}`,
      );
    }
  }
  if (/^(true|1)$/i.test(source.TRUST_PROXY?.trim() ?? '')) {
    // Express's `true` believes whoever connects; a client could name any address it likes.
    throw new EnvError(
      `TRUST_PROXY=${source.TRUST_PROXY?.trim()} would believe X-Forwarded-For from any client: name the proxies instead, e.g. TRUST_PROXY=loopback when the proxy runs on this host (expected ${PROXY_LIST})`,
    );
  }
  const storeKind = readVariable(source, 'SESSION_STORE');
  const sessionStore =
    storeKind === 'redis'
      ? {
          kind: 'redis' as const,
          url: readVariable(source, 'SESSION_REDIS_URL') ?? readVariable(source, 'REDIS_URL'),
          prefix: readVariable(source, 'SESSION_REDIS_PREFIX'),
        }
      : { kind: 'sqlite' as const };
  const workers = readVariable(source, 'LMS_WORKERS');
  if (workers > 1 && sessionStore.kind !== 'redis') {
    throw new EnvError(
      `LMS_WORKERS=${workers} runs ${workers} processes that share their sessions through Redis: set SESSION_STORE=redis (and SESSION_REDIS_URL or REDIS_URL)`,
    );
  }
  const databasePath = readVariable(source, 'DATABASE_PATH');
  const base = source.INIT_CWD && source.INIT_CWD !== '' ? source.INIT_CWD : cwd;
  return {
    port: readVariable(source, 'PORT'),
    host: readVariable(source, 'HOST'),
    databasePath:
      databasePath === ':memory:' || isAbsolute(databasePath)
        ? databasePath
        : resolve(base, databasePath),
    passwordHashIterations: readVariable(source, 'PASSWORD_HASH_ITERATIONS'),
    logLevel: readVariable(source, 'LOG_LEVEL'),
    xqueueLockSeconds: readVariable(source, 'XQUEUE_LOCK_SECONDS'),
    xqueueMaxFailures: readVariable(source, 'XQUEUE_MAX_FAILURES'),
    sessionTtlSeconds: readVariable(source, 'SESSION_TTL_SECONDS'),
    stormAlertEvictionsPerMinute: readVariable(source, 'STORM_ALERT_EVICTIONS_PER_MINUTE'),
    maxBodyBytes: readVariable(source, 'MAX_BODY_BYTES'),
    loginThrottleFailures: readVariable(source, 'LOGIN_THROTTLE_FAILURES'),
    loginThrottleWindowSeconds: readVariable(source, 'LOGIN_THROTTLE_WINDOW_SECONDS'),
    trustProxy: readVariable(source, 'TRUST_PROXY'),
    csrfTrustedOrigins: readVariable(source, 'CSRF_TRUSTED_ORIGINS'),
    sqliteSynchronous: readVariable(source, 'SQLITE_SYNCHRONOUS'),
    metricsToken: readVariable(source, 'METRICS_TOKEN'),
    enforcement,
    sessionStore,
    workers,
    policy,
  };
}

/** Reads the process environment: the one place in the LMS that touches `process.env`. */
export function readEnv(): LmsConfig {
  return parseEnv(process.env, process.cwd());
}
